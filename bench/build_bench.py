"""Throughput of the shipped web and code recipes on real corpora of >= 10k documents, 1 vs 2 workers.

web:  every API entry and every leaf section of the Python 3.11 documentation (Debian's
      python3.11-doc, fetched once), each a page wrapped in site boilerplate, packed into
      gzipped WARCs of 1,000 records (one work unit each); run through pipelines/web.yaml
      (extraction, language ID, Gopher, C4, FineWeb, exact and MinHash dedup).
code: .py files of the stdlib and of installed dependencies (transformers, torch, pandas, ...),
      run through pipelines/code.yaml (code reader, code_quality, exact and MinHash dedup).

Each run is `instruct build` in a subprocess. docs/s = input records (documents + reader
rejects) per second of the build as its manifest times it (worker start-up and the global dedup
passes included, interpreter start-up not). The load average printed with each row says how
busy the machine was: 2w/1w can only approach 2 with two idle cores.

    python bench/build_bench.py [--docs 10000] [--workers 1 2] [--recipes web code]
"""
from __future__ import annotations

import argparse
import os
import shutil
import site
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

import lxml.html
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from debian import CACHE, python_doc_html  # noqa: E402

from instruct.config import load_yaml  # noqa: E402
from instruct.io.shards import read_json  # noqa: E402
from instruct.samples import wrap_page, write_warc  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
CODE_PACKAGES = ("transformers", "torch", "pandas", "sklearn", "numpy", "datasets", "pyarrow", "matplotlib", "peft",
                 "accelerate", "openai", "jinja2", "click", "tqdm", "yaml", "gguf", "sympy", "scipy")
RECORDS_PER_WARC = 1000


def doc_fragments() -> list[tuple[str, str, str]]:
    """(url, title, html) of each API entry and each leaf section of the Python docs."""
    fragments = []
    for path in python_doc_html():
        tree = lxml.html.fromstring(path.read_bytes())
        relative = Path(*path.parts[path.parts.index("html") + 1:]).as_posix()
        entries = tree.xpath('//div[@role="main"]//dl[contains(@class, "py")]')
        sections = tree.xpath('//div[@role="main"]//section[not(.//section)]')
        for index, element in enumerate(entries + sections):
            title = (element.xpath("string((.//dt|.//h1|.//h2|.//h3|.//h4)[1])") or path.stem).strip()
            url = f"https://docs.example.org/{relative}#{index}"
            fragments.append((url, title[:120], lxml.html.tostring(element, encoding="unicode")))
    return fragments


def web_corpus(docs: int) -> list[str]:
    """Glob of the WARCs of the first `docs` fragments (written once, then reused)."""
    folder = CACHE.parent / "bench" / f"web-warc-{docs}"
    if not (folder / ".done").exists():
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        pages = [(url, wrap_page(title, body, url)) for url, title, body in doc_fragments()[:docs]]
        if len(pages) < docs:
            print(f"note: the Python docs give {len(pages):,} pages, fewer than --docs {docs:,}")
        for start in range(0, len(pages), RECORDS_PER_WARC):
            write_warc(folder / f"docs-{start // RECORDS_PER_WARC:05d}.warc.gz", pages[start:start + RECORDS_PER_WARC])
        (folder / ".done").touch()
    return [str(folder / "*.warc.gz")]


def code_corpus(docs: int) -> list[str]:
    """The first `docs` .py files of the stdlib, then of installed dependencies, in sorted order."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    roots = [stdlib] + [p for p in (Path(site.getsitepackages()[0]) / name for name in CODE_PACKAGES) if p.is_dir()]
    files: list[str] = []
    for root in roots:
        files.extend(str(p) for p in sorted(root.rglob("*.py")) if "site-packages" not in p.relative_to(root).parts)
        if len(files) >= docs:
            break
    return files[:docs]


def run(recipe_name: str, paths: list[str], workers: int) -> dict:
    """One `instruct build` in a subprocess, so that the CPU time of its workers can be counted."""
    data = load_yaml(REPO / "pipelines" / f"{recipe_name}.yaml")
    data["read"]["paths"] = paths
    with tempfile.TemporaryDirectory() as folder:
        recipe, output = Path(folder) / "recipe.yaml", Path(folder) / "out"
        recipe.write_text(yaml.safe_dump(data), encoding="utf-8")
        subprocess.run([sys.executable, "-m", "instruct", "build", str(recipe), "--workers", str(workers),
                        "--output", str(output)], check=True, env={**os.environ, "INSTRUCT_NO_PROGRESS": "1"},
                       stdout=subprocess.DEVNULL)
        manifest = read_json(output / "manifest.json")
    counts = manifest["counts"]
    return {"read": counts["read"], "written": counts["written"], "docs/s": counts["read"] / manifest["seconds"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=10_000, help="documents per corpus (>= 10k for the record)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--recipes", nargs="+", default=["web", "code"], choices=["web", "code"])
    args = parser.parse_args()
    corpora = {"web": web_corpus, "code": code_corpus}
    base, *others = args.workers
    print(f"{'recipe':<6} {'read':>7} {'written':>8} " + " ".join(f"{f'{w}w docs/s':>11}" for w in args.workers)
          + " " + " ".join(f"{f'{w}w/{base}w':>7}" for w in others) + " "
          + " load avg")
    for name in args.recipes:
        paths = corpora[name](args.docs)
        results = {w: run(name, paths, w) for w in args.workers}
        first = results[base]
        print(f"{name:<6} {first['read']:>7,} {first['written']:>8,} "
              + " ".join(f"{results[w]['docs/s']:>11,.0f}" for w in args.workers) + " "
              + " ".join(f"{results[w]['docs/s'] / first['docs/s']:>7.2f}" for w in others) + " "
              + f"{os.getloadavg()[1]:.1f} on {os.cpu_count()} cores", flush=True)


if __name__ == "__main__":
    main()
