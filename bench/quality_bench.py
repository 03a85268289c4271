"""Model-based quality filters vs rules on low-quality kinds that rules miss.

    python bench/quality_bench.py [--bad-per-kind 250] [--ppl-docs 300] [--max-tokens 128]
    python bench/quality_bench.py --real [--real-sample 400]    # the shipped recipes on real manuals

--real: whole pages of HTML manuals from Debian packages (python3.11-doc, git-doc,
postgresql-doc-15, sqlite3-doc, python-django-doc, debian-reference-en, bash-doc; fetched once by
bench/debian.py), extracted as the web recipe extracts them; index/search pages and pages under
100 words left out. Junk of the four kinds below is injected, built from the same corpus' words.
The steps of the shipped pipelines/web.yaml (all but dedup and PII, in order, the built-in
classifier net included; the perplexity net on a stratified sample of what the rest keeps) give
good-page retention and junk recall per kind, next to the published-threshold rules as the
baseline; pipelines/books.yaml is measured on the long-form pages (>= 1,000 words). Pages and junk
are split in halves (--split): the recipe's thresholds were set on `calib`, `test` reports them.

Good documents are real prose on every machine: stdlib docstrings (source `docs`) and the
`pydoc_data` reference topics cut into sections (source `reference`). Bad documents are built
from real words and real data, shaped to pass line- and word-statistics rules:
- word_salad: words drawn from the corpus' own frequencies, in capitalised, punctuated sentences;
- boilerplate: pages of site chrome only (breadcrumbs, share bars, archives, footers);
- data_dump: records of this machine's dpkg database and the Unicode database, one per line;
- generated_table: auto-generated API index tables of stdlib modules (name, kind, summary).
Train and test come from disjoint halves of every source (modules, topics, packages, code
points). Rules are the registry's gopher_quality, gopher_repetition, c4 and fineweb steps.
The classifier and perplexity thresholds are set on training data to keep 99.9 % of good
documents; recall is measured on the test half. Prints a table and ratios against rules alone.
"""
from __future__ import annotations

import argparse
import collections
import hashlib
import inspect
import os
import random
import re
import subprocess
import sys
import time
import unicodedata
from pathlib import Path

import numpy as np
import pyarrow as pa

from instruct.pipeline.registry import available_steps, make_step
from instruct.pipeline.step import Step
from instruct.quality.classifier import TrainConfig, train_classifier
from instruct.schema import documents_table

RULES = ("gopher_quality", "gopher_repetition", "c4", "fineweb")
KINDS = ("word_salad", "boilerplate", "data_dump", "generated_table")
GENERATED_PAGES = re.compile(r"^(genindex|py-modindex|search)")
SIDE_EFFECT_MODULES = {"antigravity", "this", "idlelib", "turtledemo", "tkinter", "turtle", "__main__"}


def is_test(key: str) -> bool:
    """Deterministic half split by a stable hash of the item's source key."""
    return hashlib.blake2b(key.encode(), digest_size=2).digest()[0] % 2 == 1


# --- good documents ---------------------------------------------------------------------------

def debian_python_docs() -> list[Path]:
    """HTML pages of the Debian package python3.11-doc (fetched once into the cache), or none."""
    from instruct.models import cache_dir

    root = cache_dir() / "bench" / "python3.11-doc"
    html = root / "usr" / "share" / "doc" / "python3.11" / "html"
    if not html.is_dir():
        root.mkdir(parents=True, exist_ok=True)
        fetched = subprocess.run("apt-get download python3.11-doc && dpkg-deb -x python3.11-doc_*.deb . "
                                 "&& rm python3.11-doc_*.deb", shell=True, cwd=root, capture_output=True)
        if fetched.returncode:
            print("python3.11-doc unavailable (apt-get download failed); using stdlib text only", file=sys.stderr)
            return []
    return sorted(html.rglob("*.html"))


def sections(text: str, key: str, source: str, words: int = 200) -> list[dict]:
    """Cut text into documents of about `words` words at paragraph (line) boundaries."""
    docs, section = [], []
    for paragraph in (p.strip() for p in text.split("\n")):
        if paragraph:
            section.append(paragraph)
        if sum(len(p.split()) for p in section) >= words:
            docs.append({"text": "\n".join(section), "source": source, "key": key})
            section = []
    return docs


def good_documents() -> list[dict]:
    """Python's HTML documentation as extracted web text (`web`) and pydoc topics (`reference`)."""
    from pydoc_data.topics import topics

    from resiliparse.extract.html2text import extract_plain_text

    docs = []
    for path in debian_python_docs():
        if GENERATED_PAGES.match(path.name):
            continue  # Sphinx's own indexes are machine-generated tables: not good text
        text = extract_plain_text(path.read_text(encoding="utf-8", errors="replace"), main_content=True,
                                  alt_texts=False, links=False)
        docs.extend(sections(text, path.name, "web"))
    for topic, text in sorted(topics.items()):
        unwrapped = re.sub(r"(?<=\S)\n(?=\S)", " ", text)  # hard-wrapped lines -> one line per paragraph
        docs.extend(sections(unwrapped, topic, "reference"))
    return docs


# --- bad documents: each generator takes the material of one split ----------------------------

def word_salad(rng: random.Random, vocabulary: list[str], weights: list[int]) -> str:
    paragraphs = []
    for _ in range(rng.randint(2, 5)):
        sentences = []
        for _ in range(rng.randint(3, 7)):
            words = rng.choices(vocabulary, weights, k=rng.randint(8, 24))
            sentences.append(words[0].capitalize() + " " + " ".join(words[1:]) + rng.choice(".....?!"))
        paragraphs.append(" ".join(sentences))
    return "\n\n".join(paragraphs)


CHROME = [
    "You are here on the {A} section of the {S} website.", "Skip to the main content of this page.",
    "This article was posted on {d} by {n} in the {A} category.", "Share this story with your friends on Facebook and Twitter.",
    "Read the previous post about {T}.", "Read the next post about {T}.", "This post is tagged with {w} and {w} and {w}.",
    "Copyright {y} by {S} and its partners, all rights reserved.", "Proudly powered by WordPress with a theme by {n}.",
    "Leave a reply below and your email address will not be published.", "Required fields are marked with a star.",
    "Sign up for our weekly newsletter to get the latest {w} news!", "{n} left a comment on {T}.",
    "Browse the archives for March {y} and February {y}.", "Follow us on Instagram and YouTube for more updates.",
    "Click here to go back to the top of the page.", "You might also like our article about {T}.",
    "Subscribe to the {S} feed to never miss a post.", "Please log in or register to post comments.",
    "Search the whole site for {w} or {w}.", "Contact us, learn more about us, or advertise with us today.",
    "This entry was filed under {A} and tagged {w}, so bookmark the permalink.", "You are reading page one of {k}.",
    "The most popular story this week is {T}.", "Continue reading the full story about {T}.",
    "There are {k} comments so far, so add yours!", "All times shown on this page are in UTC.",
    "Print this page or email it to a friend.", "Advertisement continues below this line.",
    "Your cart is empty, so keep shopping for {w} deals!", "Free shipping on all orders over fifty dollars.",
]


def boilerplate(rng: random.Random, titles: list[str], words: list[str]) -> str:
    site = " ".join(w.capitalize() for w in rng.sample(words, 2))
    fill = {"A": lambda: rng.choice(words).capitalize(), "B": lambda: rng.choice(words).capitalize(),
            "T": lambda: rng.choice(titles), "w": lambda: rng.choice(words), "S": lambda: site,
            "n": lambda: rng.choice(words).capitalize() + " " + rng.choice(words).capitalize(),
            "d": lambda: f"{rng.choice(['March', 'May', 'July', 'October'])} {rng.randint(1, 28)}, {rng.randint(2009, 2024)}",
            "y": lambda: str(rng.randint(2009, 2024)), "k": lambda: str(rng.randint(2, 40)),
            "h": lambda: f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}"}
    lines = [re.sub(r"\{(\w)\}", lambda m: fill[m.group(1)](), line)
             for line in rng.sample(CHROME, rng.randint(10, 18))]
    return "\n".join(lines)


def dpkg_records() -> list[dict[str, str]]:
    records, current = [], {}
    for line in Path("/var/lib/dpkg/status").read_text(encoding="utf-8", errors="replace").splitlines() + [""]:
        if not line.strip():
            if current.get("Package"):
                records.append(current)
            current = {}
        elif not line.startswith(" ") and ":" in line:
            key, _, value = line.partition(":")
            current[key] = value.strip()
    return records


def unicode_rows(test: bool) -> list[str]:
    rows = []
    for code in range(0x20, 0x3000):
        name = unicodedata.name(chr(code), "")
        if name and is_test(name.split()[0]) == test:
            rows.append(f"Character {code:04X} is named {name.lower()} with category {unicodedata.category(chr(code))} "
                        f"and bidirectional class {unicodedata.bidirectional(chr(code))}.")
    return rows


def data_dump(rng: random.Random, packages: list[dict[str, str]], unicode: list[str]) -> str:
    if rng.random() < 0.5:
        start = rng.randrange(len(unicode) - 30)
        return "\n".join(unicode[start:start + rng.randint(8, 25)])
    lines = []
    for record in rng.sample(packages, rng.randint(6, 16)):
        lines.append(f"Package {record['Package']} version {record.get('Version', 'unknown')} for "
                     f"{record.get('Architecture', 'all')} in section {record.get('Section', 'none')} with priority "
                     f"{record.get('Priority', 'none')} uses {record.get('Installed-Size', '0')} kilobytes and "
                     f"provides {record.get('Description', 'nothing').rstrip('.')}.")
    return "\n".join(lines)


def module_rows(module_names: list[str]) -> list[list[str]]:
    """Per module, rows of (name, kind, first docstring line): what API index generators emit."""
    import importlib
    import warnings

    tables = []
    for module_name in module_names:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                module = importlib.import_module(module_name)
        except Exception:  # noqa: BLE001 (platform-specific or deprecated modules are skipped)
            continue
        rows = []
        for name, value in sorted(vars(module).items()):
            doc = inspect.getdoc(value) if not name.startswith("_") else None
            summary = doc.strip().splitlines()[0] if doc else ""
            if summary.endswith(".") and len(summary.split()) >= 3:
                rows.append(f"{module_name}.{name}\t{type(value).__name__}\t{summary}")
        if len(rows) >= 6:
            tables.append(rows)
    return tables


def generated_table(rng: random.Random, tables: list[list[str]]) -> str:
    rows = rng.choice(tables)
    start = rng.randrange(max(1, len(rows) - 10))
    picked = rows[start:start + rng.randint(6, 25)]
    separator = rng.choice(["\t", "  ", " | "])
    return "\n".join(row.replace("\t", separator) for row in picked)


def bad_documents(good: list[dict], test: bool, per_kind: int, seed: int) -> list[dict]:
    rng = random.Random(seed + test)
    split_good = [d for d in good if is_test(d["key"]) == test]
    counts = collections.Counter(w.strip(".,;:()'\"").lower() for d in split_good for w in d["text"].split())
    vocabulary = [w for w, n in counts.items() if w.isalpha()]
    weights = [counts[w] for w in vocabulary]
    titles = [d["text"].split("\n")[0].strip().rstrip(".")[:70] for d in split_good if len(d["text"]) > 80]
    packages = [r for r in dpkg_records() if is_test(r["Package"]) == test]
    unicode = unicode_rows(test)
    modules = sorted(m for m in sys.stdlib_module_names - SIDE_EFFECT_MODULES
                     if is_test(m) == test and not m.startswith("_"))
    tables = module_rows(modules)
    makers = {"word_salad": lambda: word_salad(rng, vocabulary, weights),
              "boilerplate": lambda: boilerplate(rng, titles, vocabulary[:3000]),
              "data_dump": lambda: data_dump(rng, packages, unicode),
              "generated_table": lambda: generated_table(rng, tables)}
    return [{"text": makers[kind](), "source": rng.choice(["web", "reference"]), "kind": kind} for kind in KINDS for _ in range(per_kind)]


# --- measurement ------------------------------------------------------------------------------

def rules_drop(rows: list[dict]) -> np.ndarray:
    """Which rows the rule steps, run in sequence as in a pipeline, drop."""
    table = documents_table([{"id": str(i), "text": r["text"], "source": r["source"]} for i, r in enumerate(rows)])
    dropped = np.zeros(len(rows), dtype=bool)
    for name in RULES:
        step = make_step(name, {})
        step.ensure_setup()
        out = step.apply(table)
        keep = [reason is None for reason in (out.reasons or [None] * out.table.num_rows)]
        for row_id, kept in zip(out.table.column("id").to_pylist(), keep):
            dropped[int(row_id)] |= not kept
        table = out.table.filter(pa.array(keep))
    return dropped


def summarize(label: str, dropped: np.ndarray, rows: list[dict], rules: np.ndarray) -> dict:
    bad = np.array([r.get("kind") is not None for r in rows])
    good_rule_kept = ~bad & ~rules
    result = {"config": label, "bad_recall": dropped[bad].mean(),
              "good_kept": (~dropped[~bad]).mean(),
              "good_kept_of_rules": (~dropped[good_rule_kept]).mean() if good_rule_kept.any() else float("nan")}
    for kind in KINDS:
        mask = np.array([r.get("kind") == kind for r in rows])
        result[kind] = dropped[mask].mean()
    return result


def unseen_kind_recall(train: list[dict], test: list[dict], rules: np.ndarray, keep: float, seed: int) -> str:
    """Recall on each kind by a classifier trained WITHOUT that kind: how far it generalises."""
    cells = []
    for kind in KINDS:
        subset = [d for d in train if d.get("kind") != kind]
        result = train_classifier([d["text"] for d in subset], [int("kind" not in d) for d in subset],
                                  TrainConfig(holdout=0.3, seed=seed))
        threshold = float(np.quantile(result.heldout_scores[result.heldout_labels == 1], 1 - keep))
        rows = [i for i, d in enumerate(test) if d.get("kind") == kind]
        scores = result.classifier.scores([test[i]["text"] for i in rows])
        cells.append(f"{kind} {np.mean(rules[rows] | (scores < threshold)):.3f}")
    return "rules + classifier trained without that kind (recall on it): " + ", ".join(cells)


def perplexity_rows(args: argparse.Namespace, train: list[dict], test: list[dict], rules: np.ndarray,
                    classifier_drop: np.ndarray) -> tuple[list[dict], str]:
    """Rules + perplexity on a stratified test sample, thresholds per source from good training docs."""
    import torch

    from instruct.quality.lm import PerplexityScorer

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    rng = random.Random(args.seed)
    calibration = [d for source in ("web", "reference") for d in
                   rng.sample([d for d in train if "kind" not in d and d["source"] == source], args.ppl_docs // 4)]
    by_kind = collections.defaultdict(list)
    for i, d in enumerate(test):
        by_kind[d.get("kind", "good")].append(i)
    share = {"good": args.ppl_docs // 2, **{k: args.ppl_docs // (2 * len(KINDS)) for k in KINDS}}
    sample = sorted(i for kind, rows in by_kind.items() for i in rng.sample(rows, min(len(rows), share[kind])))
    tick = time.perf_counter()
    scorer = PerplexityScorer(max_tokens=args.max_tokens, batch_size=16)
    calib_ppl = scorer.perplexities([d["text"] for d in calibration])
    sample_ppl = scorer.perplexities([test[i]["text"] for i in sample])
    ppl_seconds = time.perf_counter() - tick
    limits = {source: float(np.nanquantile([p for p, d in zip(calib_ppl, calibration) if d["source"] == source],
                                           args.keep)) for source in ("web", "reference")}
    sub_rows = [test[i] for i in sample]
    sub_rules = rules[sample]
    ppl_drop = sub_rules | np.array([p > limits[r["source"]] for p, r in zip(sample_ppl, sub_rows)])

    table = [summarize(f"rules alone (LM sample n={len(sample)})", sub_rules, sub_rows, sub_rules),
             summarize("rules + perplexity (same sample)", ppl_drop, sub_rows, sub_rules),
             summarize("rules + classifier (same sample)", classifier_drop[sample], sub_rows, sub_rules)]
    base, ppl = table[0], table[1]
    line = (f"perplexity: +{100 * (ppl['bad_recall'] - base['bad_recall']):.1f} points over rules alone on its "
            f"sample, keeping {100 * ppl['good_kept_of_rules']:.1f}%; limits per source "
            f"{ {k: round(v, 1) for k, v in limits.items()} }; {len(calibration) + len(sample)} docs in "
            f"{ppl_seconds:.0f}s ({(len(calibration) + len(sample)) / ppl_seconds:.1f} docs/s, "
            f"{torch.get_num_threads()} threads, wall clock)")
    return table, line


# --- real corpus: the shipped recipes on Debian's HTML manuals ------------------------------------

REAL_PACKAGES = ("python3.11-doc", "git-doc", "postgresql-doc-15", "sqlite3-doc", "python-django-doc",
                 "debian-reference-en", "bash-doc")
INDEX_PAGES = re.compile(r"^(genindex|py-modindex|search|index|bookindex|toc|sitemap)", re.IGNORECASE)
BASELINE = [{"language": {"languages": ["en"], "min_score": 0.65}}, "gopher_repetition", "gopher_quality", "c4", "fineweb"]


def real_pages() -> list[dict]:
    """Every content page of the manuals as the web recipe's extractor sees it."""
    sys.path.insert(0, str(Path(__file__).parent))
    from debian import unpacked

    from instruct.io.extract import extract_main_text

    pages = []
    for package in REAL_PACKAGES:
        for path in sorted(unpacked(package).rglob("*.htm*")):
            if INDEX_PAGES.match(path.name) or path.suffix not in (".html", ".htm"):
                continue
            text = extract_main_text(path.read_text(encoding="utf-8", errors="replace"))
            if len(text.split()) >= 100:
                pages.append({"text": text, "source": "web", "key": f"{package}/{path.name}", "package": package})
    return pages


def recipe_steps(path: str) -> list:
    """The per-unit steps of a shipped recipe, in order (global dedup and PII left out)."""
    from instruct.config import load_yaml

    skip = {"exact_dedup", "minhash_dedup", "pii"}
    return [s for s in load_yaml(Path(__file__).resolve().parent.parent / path)["steps"]
            if (s if isinstance(s, str) else next(iter(s))) not in skip]


def run_steps(steps: list, rows: list[dict]) -> tuple[np.ndarray, collections.Counter]:
    """Which rows the steps, run in sequence as in a build, drop; and the count per reason."""
    table = documents_table([{"id": str(i), "text": r["text"], "source": r["source"]} for i, r in enumerate(rows)])
    dropped, reasons = np.zeros(len(rows), dtype=bool), collections.Counter()
    for item in steps:
        step = item if isinstance(item, Step) else make_step(*((item, {}) if isinstance(item, str)
                                                               else next(iter(item.items()))))
        step.ensure_setup()
        out = step.apply(table)
        keep = [reason is None for reason in (out.reasons or [None] * out.table.num_rows)]
        for row_id, reason in zip(out.table.column("id").to_pylist(), out.reasons or []):
            if reason:
                dropped[int(row_id)] = True
                reasons[reason] += 1
        table = out.table.filter(pa.array(keep))
    return dropped, reasons


def real_junk(good: list[dict], per_kind: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    counts = collections.Counter(w.strip(".,;:()'\"").lower() for d in good for w in d["text"].split())
    vocabulary = [w for w, n in counts.items() if w.isalpha()]
    weights = [counts[w] for w in vocabulary]
    titles = [d["text"].split("\n")[0].strip()[:70] for d in good]
    packages, unicode = dpkg_records(), unicode_rows(True) + unicode_rows(False)
    tables = module_rows(sorted(m for m in sys.stdlib_module_names - SIDE_EFFECT_MODULES if not m.startswith("_")))
    makers = {"word_salad": lambda: word_salad(rng, vocabulary, weights),
              "boilerplate": lambda: boilerplate(rng, titles, vocabulary[:3000]),
              "data_dump": lambda: data_dump(rng, packages, unicode),
              "generated_table": lambda: generated_table(rng, tables)}
    return [{"text": makers[kind](), "source": "web", "kind": kind} for kind in KINDS for _ in range(per_kind)]


def real_row(label: str, rows: list[dict], dropped: np.ndarray) -> str:
    bad = np.array(["kind" in r for r in rows])
    cells = [f"{(~dropped[~bad]).mean():.3f} ({(~bad).sum()})"]
    cells += [f"{dropped[np.array([r.get('kind') == k for r in rows])].mean():.3f}" for k in KINDS]
    cells.append(f"{dropped[bad].mean():.3f}")
    return f"| {label} | " + " | ".join(cells) + " |"


def real_main(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    pages = real_pages()
    junk = real_junk(pages, args.bad_per_kind, args.seed)
    if args.split != "all":  # thresholds were set on the calibration half; the test half reports them
        test = args.split == "test"
        pages = [p for p in pages if is_test(p["key"]) == test]
        junk = [j for i, j in enumerate(junk) if (i % 2 == 1) == test]
    good, rows = pages, pages + junk
    print(f"real corpus ({args.split} split): {len(good)} pages of {len(REAL_PACKAGES)} manuals + "
          f"{len(rows) - len(good)} junk ({time.perf_counter() - started:.0f}s)", file=sys.stderr)
    header = "| config | good kept (n) | " + " | ".join(KINDS) + " | junk recall |"
    print(header + "\n|" + "---|" * (len(KINDS) + 3))
    base, base_reasons = run_steps(BASELINE, rows)
    print(real_row("published rules (baseline)", rows, base))
    web = recipe_steps("pipelines/web.yaml")
    rules = [s for s in web if (s if isinstance(s, str) else next(iter(s))) != "perplexity"]
    tick = time.process_time()
    ruled, reasons = run_steps(rules, rows)
    rule_seconds = time.process_time() - tick
    print(real_row("web.yaml rules + classifier net", rows, ruled))
    no_net = [s for s in rules if (s if isinstance(s, str) else next(iter(s))) != "quality_classifier"]
    print(real_row("web.yaml rules without the classifier", rows, run_steps(no_net, rows)[0]))
    # the perplexity net on a stratified sample of what the rules keep (the LM is the slow part)
    rng = random.Random(args.seed)
    kept = collections.defaultdict(list)
    for i, r in enumerate(rows):
        if not ruled[i]:
            kept[r.get("kind", "good")].append(i)
    share = {"good": args.real_sample // 2, **{k: args.real_sample // (2 * len(KINDS)) for k in KINDS}}
    sample = sorted(i for kind, ids in kept.items() for i in rng.sample(ids, min(len(ids), share.get(kind, 0))))
    net = [make_step("perplexity", s["perplexity"]) for s in web if not isinstance(s, str) and "perplexity" in s]
    if not sample:
        sample, net = [], []  # --real-sample 0: rules only
    for step in net:
        step.ensure_setup()  # the model loads once per worker; the speed below is scoring only
    tick, cpu_tick = time.perf_counter(), time.process_time()
    net_dropped, net_reasons = run_steps(net, [rows[i] for i in sample])
    net_seconds, net_cpu = max(time.perf_counter() - tick, 1e-9), max(time.process_time() - cpu_tick, 1e-9)
    # estimate over all rows: a row the rules keep is dropped by the net at its kind's sampled rate
    rate = {kind: net_dropped[[j for j, i in enumerate(sample) if rows[i].get("kind", "good") == kind]].mean()
            if any(rows[i].get("kind", "good") == kind for i in sample) else 0.0 for kind in ["good", *KINDS]}
    expected = np.array([1.0 if ruled[i] else rate[r.get("kind", "good")] for i, r in enumerate(rows)])
    bad = np.array(["kind" in r for r in rows])
    cells = [f"{1 - expected[~bad].mean():.3f} ({(~bad).sum()})"]
    cells += [f"{expected[np.array([r.get('kind') == k for r in rows])].mean():.3f}" for k in KINDS]
    print(f"| web.yaml rules + classifier + perplexity net (perplexity on a sample of {len(sample)}) | " + " | ".join(cells)
          + f" | {expected[bad].mean():.3f} |")
    long_form = [r for r in good if len(r["text"].split()) >= 1000]
    books, book_reasons = run_steps(recipe_steps("pipelines/books.yaml"), long_form)
    books_base, _ = run_steps(BASELINE[:3], long_form)
    print(f"\nbooks.yaml on {len(long_form)} long-form pages (>= 1,000 words): kept {(~books).mean():.3f} "
          f"(published Gopher thresholds: {(~books_base).mean():.3f}); drops {dict(book_reasons.most_common(5))}")
    print(f"web.yaml rule drops: {dict(reasons.most_common(8))}")
    print(f"baseline drops: {dict(base_reasons.most_common(6))}")
    megabytes = sum(len(r["text"].encode()) for r in rows) / 1e6
    net_mb = sum(len(rows[i]["text"].encode()) for i in sample) / 1e6
    print(f"web.yaml rules + classifier: {len(rows) / rule_seconds:,.0f} docs/s, {megabytes / rule_seconds:.2f} MB/s "
          f"per core (CPU time); perplexity net {len(sample) / net_seconds:.1f} docs/s wall, "
          f"{net_mb / net_cpu:.3f} MB/s per core (CPU time of all threads, {os.cpu_count()} cores); with it the "
          f"per-unit steps run at {megabytes / (rule_seconds + net_cpu * len(rows) / max(len(sample), 1)):.3f} "
          f"MB/s per core if every row reached it (the recipe scores only dedup survivors); net drops "
          f"{dict(net_reasons)}; load average {os.getloadavg()[0]:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--real", action="store_true", help="the shipped recipes on real Debian manuals")
    parser.add_argument("--real-sample", type=int, default=400, help="--real: rows the perplexity net scores")
    parser.add_argument("--split", choices=("test", "calib", "all"), default="test",
                        help="--real: the half of pages and junk to measure (thresholds were set on calib)")
    parser.add_argument("--bad-per-kind", type=int, default=250, help="bad documents per kind and split")
    parser.add_argument("--ppl-docs", type=int, default=200,
                        help="test documents scored by the LM (half good, half bad; half as many calibrate); 0 skips")
    parser.add_argument("--max-tokens", type=int, default=128, help="tokens per document the LM scores")
    parser.add_argument("--keep", type=float, default=0.999, help="share of good training documents to keep")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.real:
        return real_main(args)
    missing = [r for r in RULES if r not in available_steps()]
    if missing:
        sys.exit(f"rule steps not available in this tree: {missing}")

    started = time.perf_counter()
    good = good_documents()
    train = [d for d in good if not is_test(d["key"])] + bad_documents(good, False, args.bad_per_kind, args.seed)
    test = [d for d in good if is_test(d["key"])] + bad_documents(good, True, args.bad_per_kind, args.seed)
    print(f"corpus: train {len(train)} docs, test {len(test)} docs "
          f"({sum('kind' not in d for d in test)} good) in {time.perf_counter() - started:.0f}s", file=sys.stderr)

    # classifier: fit on the training half; threshold keeps `keep` of its held-out good documents
    labels = [int("kind" not in d) for d in train]
    result = train_classifier([d["text"] for d in train], labels, TrainConfig(holdout=0.3, seed=args.seed))
    held_good = result.heldout_scores[result.heldout_labels == 1]
    threshold = float(np.quantile(held_good, 1 - args.keep))
    rules = rules_drop(test)
    clf_scores = result.classifier.scores([d["text"] for d in test])  # the model sees what rules saw
    classifier_drop = rules | (clf_scores < threshold)

    # classifier speed: one process, one core's worth of work (hashing + sparse dot in numpy/scipy)
    speed_texts = [d["text"] for d in test] * max(1, 6000 // len(test))
    tick = time.process_time()  # CPU seconds of this single-threaded process: docs/s per core
    result.classifier.scores(speed_texts)
    speed = len(speed_texts) / (time.process_time() - tick)
    megabytes = sum(len(t.encode()) for t in speed_texts) / 1e6

    table = [summarize("rules alone", rules, test, rules), summarize("rules + classifier", classifier_drop, test, rules)]
    perplexity_line = "perplexity: skipped (--ppl-docs 0)"
    if args.ppl_docs:
        rows, perplexity_line = perplexity_rows(args, train, test, rules, classifier_drop)
        table += rows
    header = ["config", "bad_recall", *KINDS, "good_kept", "good_kept_of_rules"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in table:
        print("| " + " | ".join(row[h] if h == "config" else f"{row[h]:.3f}" for h in header) + " |")
    base, clf = table[0], table[1]
    print(f"\nclassifier: +{100 * (clf['bad_recall'] - base['bad_recall']):.1f} points of bad recall over rules "
          f"alone ({clf['bad_recall'] / max(base['bad_recall'], 1e-9):.2f}x), keeping "
          f"{100 * clf['good_kept_of_rules']:.1f}% of the good documents rules keep; threshold {threshold:.3f}; "
          f"held-out AUC {result.metrics['auc']:.4f}")
    print(unseen_kind_recall(train, test, rules, args.keep, args.seed))
    print(perplexity_line)
    print(f"classifier speed: {speed:,.0f} docs/s per core ({megabytes / (len(speed_texts) / speed):.1f} MB/s, "
          f"CPU time of one process); load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
