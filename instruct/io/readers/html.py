"""HTML files: one file = one document, its main text extracted (see instruct/io/extract.py).

    read: {format: html, paths: [data/generated/html/], options: {extractor: trafilatura}}

A page whose extraction is empty (a stub, pure navigation) is counted as `no_main_text`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from instruct.io.extract import DEFAULT_ENGINE, decode_html, extract_main_text
from instruct.io.readers.base import Reject
from instruct.io.readers.text import FilesOptions, FilesReader, file_meta


@dataclass
class ExtractOptions:
    """The extraction part of `read.options`, shared by the html and warc readers."""

    extractor: str = DEFAULT_ENGINE  # resiliparse or trafilatura
    extract: dict[str, Any] = field(default_factory=dict)  # passed to the engine unchanged
    min_text_chars: int = 1  # shorter extracts are rejected as no_main_text


@dataclass
class HtmlOptions(FilesOptions, ExtractOptions):
    pass


def main_text(options: ExtractOptions, html: str) -> str | None:
    """The page's main text, or None when there is too little of it."""
    text = extract_main_text(html, options.extractor, **options.extract)
    return text if len(text) >= options.min_text_chars else None


class HtmlReader(FilesReader):
    format = "html"
    default_source = "web"
    extensions = (".html", ".htm", ".xhtml", ".html.gz")
    Options: ClassVar[type] = HtmlOptions

    def parse(self, path: str, root: str, data: bytes) -> dict | Reject:
        text = main_text(self.options, decode_html(data))
        if text is None:
            return self.reject(path, "no_main_text", f"{self.options.extractor} found no main content")
        return self.document(text, path, meta=file_meta(path, root, data, extractor=self.options.extractor))
