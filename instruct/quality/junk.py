"""Synthetic junk for training a quality classifier without labels: the kinds rules miss.

A crawl's junk that passes word- and line-statistics rules is mostly site chrome (menus, share
bars, footers), record dumps (one generated sentence or `key: value` row per record) and
generated index tables (name | kind | summary). This module fabricates such pages from material
every Python installation has (its own tables: MIME types, codec aliases, HTML entities, HTTP
statuses, error numbers; its own API), so the built-in classifier needs no download and nothing
third-party in git. Word salad is left to the perplexity net, which sees it better.
"""
from __future__ import annotations

import errno
import html.entities
import http
import inspect
import mimetypes
import os
import random
import re
from collections.abc import Callable
from encodings.aliases import aliases

KINDS = ("chrome", "records", "index_table")

# Site chrome written for this module: navigation, social, consent, commerce and footer lines.
CHROME_LINES = [
    "Home | {W} | {W} | About us | Contact", "Menu", "Main navigation", "Toggle navigation",
    "Posted by {N} on {D}", "Last updated {D}", "{k} min read", "Share on Facebook", "Share on LinkedIn",
    "Tweet this article", "Pin it", "Send by e-mail", "Related articles", "Popular posts", "Recent comments",
    "{N} on {T}", "Tags: {w}, {w}, {w}", "Categories: {W}, {W}", "Older posts", "Newer posts",
    "Page {k} of {k}", "Load more", "Back to top", "We value your privacy.",
    "This website stores cookies on your computer to improve your experience.", "Accept all cookies",
    "Manage preferences", "Reject non-essential cookies", "Sign in", "Create an account", "Forgot your password?",
    "Join {k},000 readers and get our best stories every week.", "Enter your e-mail address", "Subscribe now",
    "Unsubscribe at any time.", "Add to cart", "Only {k} left in stock, order soon.", "Customers also bought",
    "Returns are free within 30 days.", "© {Y} {S}. All rights reserved.", "Terms and conditions",
    "Imprint", "Sitemap", "Careers at {S}", "Press and media enquiries", "Made with love in {W}",
    "Download our app for iOS and Android.", "Sponsored content from our partners.", "Report an ad",
    "Was this page helpful? Yes No", "{k} people found this helpful.", "Write a review", "Show all {k} replies",
    "Reply", "Quote", "Report post", "Members online: {k}", "Welcome back, guest!", "Skip navigation",
]


def chrome(rng: random.Random, words: list[str], sentences: list[str], lines: tuple[int, int] = (8, 20)) -> str:
    site = rng.choice(words).capitalize() + rng.choice(["", " Hub", " Daily", " Online", " Blog", " Store"])
    fill: dict[str, Callable[[], str]] = {
        "W": lambda: rng.choice(words).capitalize(), "w": lambda: rng.choice(words),
        "N": lambda: f"{rng.choice(words).capitalize()} {rng.choice(words).capitalize()}",
        "T": lambda: " ".join(rng.choice(sentences).split()[:rng.randint(4, 9)]).rstrip(".,;:"),
        "D": lambda: f"{rng.randint(1, 28)} {rng.choice(['Jan', 'Apr', 'Jun', 'Sep', 'Nov'])} {rng.randint(2005, 2025)}",
        "Y": lambda: str(rng.randint(2005, 2025)), "k": lambda: str(rng.randint(2, 60)), "S": lambda: site}
    picked = rng.sample(CHROME_LINES, rng.randint(*lines))
    return "\n".join(re.sub(r"\{(\w)\}", lambda m: fill[m.group(1)](), line) for line in picked)


def _record_tables() -> list[list[tuple[str, str, str]]]:
    """(subject, attribute, value) triples per table of this Python installation."""
    mimetypes.init()
    return [
        [(ext, "media type", kind) for ext, kind in sorted(mimetypes.types_map.items())],
        [(alias, "codec", codec) for alias, codec in sorted(aliases.items())],
        [(name, "code point", f"U+{point:04X}") for name, point in sorted(html.entities.name2codepoint.items())],
        [(str(status.value), "status", f"{status.phrase}: {status.description or status.phrase}")
         for status in http.HTTPStatus],
        [(name, "errno", f"{number} ({os.strerror(number)})") for number, name in sorted(errno.errorcode.items())],
    ]


RECORD_FORMATS = [
    "{s} has the {a} {v}.", "Entry {i}: {s} -> {v}", "{s}: {v}", "{i}. {s} ({a}) = {v}", "{s},{a},{v}",
    "The {a} of {s} is {v}.", "{s} | {v}", "[{i}] {a}={v} name={s}",
]


def records(rng: random.Random, tables: list[list[tuple[str, str, str]]]) -> str:
    table = rng.choice(tables)
    start = rng.randrange(max(1, len(table) - 30))
    form = rng.choice(RECORD_FORMATS)
    rows = table[start:start + rng.randint(8, 30)]
    return "\n".join(form.format(s=s, a=a, v=v, i=start + n) for n, (s, a, v) in enumerate(rows))


def _api_rows() -> list[list[tuple[str, str, str]]]:
    """(qualified name, kind, summary) per builtin type: what API reference generators list."""
    tables = []
    for owner in (str, bytes, list, dict, set, int, float, complex, frozenset, bytearray, memoryview, range):
        rows = []
        for name, value in sorted(vars(owner).items()):
            doc = inspect.getdoc(value) if not name.startswith("_") else None
            if doc:
                rows.append((f"{owner.__name__}.{name}", type(value).__name__, doc.splitlines()[0]))
        if len(rows) >= 5:
            tables.append(rows)
    return tables


def index_table(rng: random.Random, tables: list[list[tuple[str, str, str]]]) -> str:
    rows = rng.choice(tables)
    start = rng.randrange(max(1, len(rows) - 6))
    separator = rng.choice([" | ", "\t", "   ", " — ", ": "])
    picked = rows[start:start + rng.randint(5, 25)]
    with_kind = rng.random() < 0.5
    return "\n".join(separator.join((name, kind, summary) if with_kind else (name, summary))
                     for name, kind, summary in picked)


def _filler(good: list[str]) -> tuple[list[str], list[str]]:
    words = sorted({w.strip(".,;:()'\"").lower() for text in good for w in text.split()[:200]} - {""})
    sentences = [s for text in good for s in text.split(". ")[:5] if len(s.split()) >= 4]
    return [w for w in words if w.isalpha() and len(w) > 2] or ["page"], sentences or ["A short title here"]


def with_chrome(good: list[str], share: float = 0.5, seed: int = 0) -> list[str]:
    """Good pages, `share` of them framed by a few chrome lines as real pages are: the content
    decides, so a menu or a "Next" link alone does not make a page junk."""
    rng = random.Random(seed)
    words, sentences = _filler(good)
    out = []
    for text in good:
        if rng.random() < share:
            head, tail = chrome(rng, words, sentences, (1, 3)), chrome(rng, words, sentences, (0, 3))
            text = "\n".join(part for part in (head, text, tail) if part)
        out.append(text)
    return out


def junk_pages(good: list[str], per_kind: int, seed: int = 0) -> list[tuple[str, str]]:
    """(kind, text) pages of every kind, using the good pages' own words and sentences as filler."""
    rng = random.Random(seed)
    words, sentences = _filler(good)
    record_tables, api_tables = _record_tables(), _api_rows()
    makers = {"chrome": lambda: chrome(rng, words, sentences), "records": lambda: records(rng, record_tables),
              "index_table": lambda: index_table(rng, api_tables)}
    return [(kind, makers[kind]()) for kind in KINDS for _ in range(per_kind)]
