"""HTML main-text extraction: resiliparse vs trafilatura on speed and quality.

Corpus: the ~500 Sphinx pages of Debian's python3.11-doc (fetched once), each with extra site
boilerplate injected (cookie banner, navigation menu, newsletter box, footer) on top of Sphinx's
own sidebar, related-links bars and footer. Gold main text = the text of Sphinx's
`<div class="body" role="main">`. Quality: word recall of the gold text, word precision of the
extract, and the share of pages where any boilerplate phrase leaks into the extract.

    python bench/extract_bench.py [--limit N]
"""
from __future__ import annotations

import argparse
import re
import sys
import time
from collections import Counter
from pathlib import Path

import lxml.html

sys.path.insert(0, str(Path(__file__).parent))
from debian import python_doc_html  # noqa: E402

from instruct.io.extract import ENGINES, extract_main_text  # noqa: E402

INJECTED_TOP = """<div class="cookie-banner"><p>We use cookies to improve your experience.</p>
<button>Accept all cookies</button></div><nav class="menu"><ul>""" + "".join(
    f'<li><a href="/{w}">{w}</a></li>' for w in ("Home", "Products", "Pricing", "Blog", "Careers", "Contact")) + \
    "</ul></nav>"
INJECTED_BOTTOM = """<div class="newsletter">Subscribe to our newsletter for weekly tips.</div>
<footer><p>Copyright 2026 Example Docs Inc. All rights reserved.</p><a href="/privacy">Privacy policy</a></footer>"""
# phrases that occur only in boilerplate: ours, and Sphinx's sidebar / footer
BOILERPLATE = ("We use cookies", "All rights reserved", "Subscribe to our newsletter", "Report a Bug",
               "Show Source", "Python Software Foundation is a non-profit", "Previous topic")
WORD = re.compile(r"\w+")


def load_pages(limit: int | None) -> list[tuple[str, str]]:
    """(gold main text, page with injected boilerplate) per Sphinx page that has a main body."""
    pages = []
    for path in python_doc_html()[:limit]:
        raw = path.read_text(encoding="utf-8", errors="replace")
        bodies = lxml.html.fromstring(raw).xpath('//div[@role="main"]')
        if not bodies:
            continue
        gold = bodies[0].text_content()
        if len(WORD.findall(gold)) < 50:
            continue
        page = raw.replace("<body>", "<body>" + INJECTED_TOP, 1).replace("</body>", INJECTED_BOTTOM + "</body>", 1)
        pages.append((gold, page))
    return pages


def overlap(gold: str, extracted: str) -> tuple[float, float]:
    gold_words, got = Counter(WORD.findall(gold.lower())), Counter(WORD.findall(extracted.lower()))
    common = sum((gold_words & got).values())
    return common / max(sum(gold_words.values()), 1), common / max(sum(got.values()), 1)


def measure(engine: str, pages: list[tuple[str, str]]) -> dict[str, float]:
    started = time.perf_counter()
    extracts = [extract_main_text(page, engine) for _, page in pages]
    seconds = time.perf_counter() - started
    scores = [overlap(gold, text) for (gold, _), text in zip(pages, extracts)]
    leaked = sum(any(p in text for p in BOILERPLATE) for text in extracts)
    megabytes = sum(len(page.encode()) for _, page in pages) / 1e6
    return {"pages/s": len(pages) / seconds, "MB/s": megabytes / seconds,
            "recall": sum(r for r, _ in scores) / len(scores), "precision": sum(p for _, p in scores) / len(scores),
            "leak": leaked / len(pages), "empty": sum(not t for t in extracts) / len(pages)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="use only the first N pages")
    args = parser.parse_args()
    pages = load_pages(args.limit)
    print(f"{len(pages)} pages, {sum(len(p.encode()) for _, p in pages) / 1e6:.1f} MB of HTML")
    results = {engine: measure(engine, pages) for engine in ENGINES}
    base = results["trafilatura"]["pages/s"]
    print(f"{'engine':<12} {'pages/s':>9} {'MB/s':>7} {'speed x':>8} {'recall':>7} {'precision':>9} "
          f"{'leak':>6} {'empty':>6}")
    for engine, r in results.items():
        print(f"{engine:<12} {r['pages/s']:>9.1f} {r['MB/s']:>7.2f} {r['pages/s'] / base:>8.1f} {r['recall']:>7.3f} "
              f"{r['precision']:>9.3f} {r['leak']:>6.1%} {r['empty']:>6.1%}")


if __name__ == "__main__":
    main()
