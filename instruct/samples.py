"""`instruct samples`: real sample inputs derived from this Python installation in seconds.

Nothing third-party is committed: the web pages are pydoc renderings of stdlib modules, wrapped in
site boilerplate (navigation, sidebar, cookie banner, footer) and packed into gzipped WARCs; guide
pages are made of module docstrings the same way; code is a subset of the stdlib sources; books are
the long prose topics of `pydoc_data`; JSONL holds the same docstrings one per line. A few
deliberately bad inputs (link farms, lists, a minified file, a binary, a vendored folder, exact
duplicates) give the filters something to drop.

    data/generated/web/crawl-0000{0,1}.warc.gz    web.yaml
    data/generated/html/*.html                    the same kind of pages as files
    data/generated/code/                          code.yaml
    data/generated/books/*.txt                    books.yaml
    data/generated/docs/*.jsonl(.gz)              docstrings, one per line
    data/generated/labeled/                       labeled.yaml, mixture.yaml (small shipped datasets)
"""
from __future__ import annotations

import gzip
import html
import importlib
import inspect
import io
import json
import pydoc
import re
import shutil
import tempfile
import warnings
from pathlib import Path

import click

from instruct.corpus import stdlib_root
from instruct.resources import labeled_samples

DEFAULT_OUTPUT = "data/generated"
SITE = "https://docs.example.org"
WARC_DATE = "2026-01-01T00:00:00Z"  # fixed, so that the same Python gives byte-identical samples

# stdlib modules whose pydoc pages become the web sample (pure Python, quick to render)
WEB_MODULES = (
    "abc", "argparse", "base64", "bisect", "calendar", "cmd", "codecs", "collections", "colorsys", "configparser",
    "contextlib", "copy", "csv", "dataclasses", "datetime", "decimal", "difflib", "dis", "email.message",
    "enum", "filecmp", "fileinput", "fnmatch", "fractions", "ftplib", "functools", "getopt", "gettext", "glob",
    "graphlib", "gzip", "hashlib", "heapq", "hmac", "html.parser", "http.client", "http.cookies", "imaplib",
    "inspect", "ipaddress", "json", "keyword", "linecache", "locale", "logging", "lzma", "mailbox", "mimetypes",
    "netrc", "numbers", "operator", "optparse", "pathlib", "pickle", "pkgutil", "platform", "plistlib",
    "poplib", "pprint", "queue", "quopri", "random", "reprlib", "sched", "secrets", "selectors", "shelve",
    "shlex", "shutil", "smtplib", "socketserver", "statistics", "string", "stringprep", "struct", "subprocess",
    "tabnanny", "tarfile", "tempfile", "textwrap", "threading", "timeit", "token", "tokenize", "trace",
    "traceback", "tracemalloc", "types", "typing", "urllib.parse", "uuid", "wave", "weakref", "webbrowser",
    "zipfile", "zipimport",
)
CODE_PACKAGES = ("json", "email", "http", "urllib", "logging", "importlib", "concurrent", "xml/dom", "wsgiref")
CODE_MODULES = ("argparse.py", "textwrap.py", "difflib.py", "heapq.py", "bisect.py", "statistics.py",
                "fractions.py", "string.py", "shlex.py", "csv.py", "dataclasses.py", "functools.py")

NAV_LINKS = ("Home", "Docs", "Tutorials", "API reference", "Blog", "Pricing", "Careers", "Community", "Support",
             "Status", "Contact sales", "Sign in")


def wrap_page(title: str, body_html: str, url: str) -> str:
    """A full site page around `body_html`: header nav, cookie banner, sidebar, footer.

    The boilerplate is what real sites add around their content and what extraction must drop.
    """
    nav = "".join(f'<li><a href="{SITE}/{name.lower().replace(" ", "-")}">{name}</a></li>' for name in NAV_LINKS)
    related = "".join(f'<li><a href="{SITE}/library/{m}.html">{m}</a></li>' for m in WEB_MODULES[:25])
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)} | Example Docs</title>
<link rel="canonical" href="{url}"><script>window.dataLayer=[];function gtag(){{dataLayer.push(arguments)}}</script>
</head><body>
<div class="cookie-banner" id="consent"><p>We use cookies to improve your experience and for analytics.
By continuing to browse you agree to our cookie policy.</p><button>Accept all cookies</button>
<button>Manage preferences</button></div>
<header class="site-header"><a class="logo" href="{SITE}/">Example Docs</a><nav class="menu"><ul>{nav}</ul></nav>
<form class="search"><input type="search" placeholder="Search the docs"></form></header>
<div class="layout">
<aside class="sidebar"><h3>Related modules</h3><ul>{related}</ul>
<div class="newsletter">Subscribe to our newsletter for weekly tips. <a href="{SITE}/subscribe">Subscribe</a></div></aside>
<main id="content"><article><h1>{html.escape(title)}</h1>
{body_html}
</article></main></div>
<footer class="site-footer"><p>Copyright 2026 Example Docs Inc. All rights reserved.</p>
<ul><li><a href="{SITE}/privacy">Privacy policy</a></li><li><a href="{SITE}/terms">Terms of service</a></li>
<li><a href="{SITE}/imprint">Imprint</a></li></ul><p>Follow us on social media.</p></footer>
</body></html>"""


def imported_modules() -> list[tuple[str, object]]:
    """(name, module) for WEB_MODULES that import here, in a fixed order."""
    modules = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in WEB_MODULES:
            try:
                modules.append((name, importlib.import_module(name)))
            except ImportError:
                continue
    return modules


def pydoc_pages(modules: list[tuple[str, object]]) -> list[tuple[str, str]]:
    """(url, html): API reference pages as pydoc renders them (mostly signatures; filters drop many)."""
    return [(f"{SITE}/library/{name}.html", wrap_page(f"{name} module", pydoc.html.document(module, name),
                                                      f"{SITE}/library/{name}.html"))
            for name, module in modules]


def module_docstrings(name: str, module: object, min_words: int = 20) -> list[tuple[str, str]]:
    """(qualified name, docstring) of a module and its public classes and functions, if substantial."""
    sections = [(name, inspect.getdoc(module))]
    sections += [(f"{name}.{member}", inspect.getdoc(value)) for member, value in sorted(vars(module).items())
                 if not member.startswith("_") and getattr(value, "__module__", None) == module.__name__
                 and (inspect.isclass(value) or inspect.isfunction(value))]
    return [(title, doc) for title, doc in sections if doc and len(doc.split()) >= min_words]


def article_pages(modules: list[tuple[str, object]]) -> list[tuple[str, str]]:
    """(url, html): guide pages of prose, from the docstrings of each module and its public members."""
    pages = []
    for name, module in modules:
        body = "\n".join(_section_html(title.removeprefix(name).lstrip("."), doc)
                         for title, doc in module_docstrings(name, module))
        url = f"{SITE}/guide/{name}.html"
        pages.append((url, wrap_page(f"A guide to {name}", body, url)))
    return pages


def _section_html(title: str, doc: str) -> str:
    """Docstring paragraphs as <p>, indented blocks and doctests as <pre>."""
    parts = [f"<h2>{html.escape(title)}</h2>"] if title else []
    for paragraph in re.split(r"\n\s*\n", doc.strip()):
        if paragraph.startswith(("    ", ">>>")) or "\n    " in paragraph:
            parts.append(f"<pre>{html.escape(paragraph)}</pre>")
        else:
            parts.append(f"<p>{html.escape(' '.join(paragraph.split()))}</p>")
    return "\n".join(parts)


def low_quality_pages() -> list[tuple[str, str]]:
    """Pages a quality filter should drop: a link farm, a bare list, a stub, a repetitive page."""
    farm = "".join(f'<a href="https://spam{i}.example.com">cheap deals {i}</a> ' for i in range(300))
    listing = "<ul>" + "".join(f"<li>{name}</li>" for name in WEB_MODULES) + "</ul>"
    repeated = "<p>" + "Buy now and save big today! " * 80 + "</p>"
    stub = "<p>Coming soon.</p>"
    pages = {"links": farm, "modules-list": listing, "offers": repeated, "coming-soon": stub}
    return [(f"{SITE}/{slug}.html", wrap_page(slug.replace("-", " ").title(), body, f"{SITE}/{slug}.html"))
            for slug, body in pages.items()]


def write_warc(path: Path, pages: list[tuple[str, str]], extra_binary: bool = False) -> None:
    """Pack pages as gzipped WARC response records (plus a warcinfo record) with warcio."""
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    with open(path, "wb") as handle:
        writer = WARCWriter(handle, gzip=True)
        info = writer.create_warcinfo_record(path.name, {"software": "instruct samples", "format": "WARC/1.1"})
        writer.write_record(info)
        records = [(url, body.encode("utf-8"), "text/html; charset=utf-8") for url, body in pages]
        if extra_binary:
            records.append((f"{SITE}/logo.png", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "image/png"))
        for url, payload, content_type in records:
            headers = StatusAndHeaders("200 OK", [("Content-Type", content_type),
                                                  ("Content-Length", str(len(payload)))], protocol="HTTP/1.1")
            record = writer.create_warc_record(url, "response", payload=io.BytesIO(payload), http_headers=headers,
                                               warc_headers_dict={"WARC-Date": WARC_DATE})
            writer.write_record(record)


def write_web(root: Path) -> dict[str, int]:
    """Two gzipped WARCs (reference pages, guides, junk, duplicates, one image) and some .html files."""
    modules = imported_modules()
    guides = article_pages(modules)
    pages = pydoc_pages(modules[::2]) + guides + low_quality_pages()
    for url, page in guides[::10]:  # exact copies under another URL, and near copies with a line added
        pages.append((url.replace("/guide/", "/mirror/"), page))
        pages.append((url.replace("/guide/", "/v2/guide/"), page.replace("</article>", "<p>Updated.</p></article>")))
    half = len(pages) // 2
    (root / "web").mkdir(parents=True)
    write_warc(root / "web" / "crawl-00000.warc.gz", pages[:half])
    write_warc(root / "web" / "crawl-00001.warc.gz", pages[half:], extra_binary=True)
    (root / "html").mkdir()
    files = pages[:6] + guides[:10] + low_quality_pages()
    for url, page in files:
        (root / "html" / url.split("/", 3)[-1].replace("/", "-")).write_text(page, encoding="utf-8")
    return {"web pages": len(pages), "html files": len(files)}


def write_code(root: Path) -> dict[str, int]:
    """A source tree: stdlib packages and modules, plus files the code reader must skip."""
    code = root / "code"
    stdlib = stdlib_root()
    sources = [stdlib / name for name in CODE_MODULES]
    sources += [p for package in CODE_PACKAGES for p in sorted((stdlib / package).rglob("*.py"))
                if "__pycache__" not in p.parts and "test" not in p.parts]
    for path in sources:
        target = code / "src" / path.relative_to(stdlib)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    (code / "README.md").write_text("# sample tree\n\nA copy of some Python stdlib modules, made by "
                                    "`instruct samples`.\n", encoding="utf-8")
    vendored = code / "node_modules" / "left-pad"
    vendored.mkdir(parents=True)
    (vendored / "index.js").write_text("module.exports = (s, n) => String(s).padStart(n);\n", encoding="utf-8")
    static = code / "static"
    static.mkdir()
    functions = ";".join(f"function f{i}(a,b){{return a*{i}+b}}" for i in range(400))
    (static / "app.min.js").write_text(functions + "\n", encoding="utf-8")
    (static / "bundle.js").write_text(functions + "\n", encoding="utf-8")  # minified without the .min name
    (static / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 8)
    return {"code files": len(sources) + 1, "files to skip": 4}


def write_books(root: Path) -> dict[str, int]:
    """The long prose topics of the Python reference, one text file each."""
    from pydoc_data.topics import topics

    books = root / "books"
    books.mkdir()
    for name in sorted(topics):
        (books / f"{name}.txt").write_text(topics[name], encoding="utf-8")
    return {"books": len(topics)}


def write_labeled(root: Path) -> dict[str, int]:
    """The small labeled datasets shipped with the package (sentiment, NLI, extractive QA)."""
    shutil.copytree(labeled_samples(), root / "labeled")
    return {"labeled files": sum(1 for _ in (root / "labeled").iterdir())}


def write_docs(root: Path) -> dict[str, int]:
    """Docstrings as JSONL: one plain file and one gzipped, to exercise both readers."""
    docs = root / "docs"
    docs.mkdir()
    lines = [json.dumps({"id": title, "text": doc, "module": name}) + "\n"
             for name, module in imported_modules() for title, doc in module_docstrings(name, module)]
    half = len(lines) // 2
    (docs / "docstrings-0000.jsonl").write_text("".join(lines[:half]), encoding="utf-8")
    with gzip.open(docs / "docstrings-0001.jsonl.gz", "wt", encoding="utf-8") as handle:
        handle.write("".join(lines[half:]))
    return {"docstrings": len(lines)}


def generate(output: str | Path = DEFAULT_OUTPUT) -> dict[str, int]:
    """Write every sample into `output`; each of its folders is replaced once all are written.

    Other folders in `output` (e.g. the demo's labeled data) are left alone.
    """
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".samples.", dir=output))
    try:
        counts: dict[str, int] = {}
        for writer in (write_web, write_code, write_books, write_docs, write_labeled):
            counts.update(writer(staging))
        for folder in sorted(staging.iterdir()):
            shutil.rmtree(output / folder.name, ignore_errors=True)
            folder.rename(output / folder.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return counts


@click.command()
@click.option("--output", default=DEFAULT_OUTPUT, show_default=True, help="Folder to (re)create.")
def samples(output: str) -> None:
    """Write real sample inputs (web WARC, HTML, code tree, books, JSONL) derived from this Python."""
    counts = generate(output)
    click.echo(" · ".join(f"{n:,} {what}" for what, n in counts.items()) + f" -> {output}")
