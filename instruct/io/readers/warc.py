"""WARC files (plain or gzipped): HTML response records -> main text, one unit per file.

Parsing is FastWARC's; gzip members are inflated by Python's `gzip`, which raises on a cut
file where FastWARC's own reader would stop quietly. Only `response` and `resource` records
are documents (`request`, `metadata`, `warcinfo`, `revisit` carry no page). Every response is
either a document or a reject: `not_html`, `http_status`, `invalid_http`, `no_main_text`, `too_large`
(a body over `read.max_record_bytes`, skipped unread), `truncated_record`
(a body shorter than its Content-Length), and for a damaged file `truncated_file` or
`invalid_warc`, naming the file, the record number and the byte offset, after which the rest
of that file is skipped and the run goes on.

    read: {format: warc, paths: ["data/generated/web/*.warc.gz"], options: {extractor: resiliparse}}
"""
from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from typing import IO, ClassVar, Iterator

from instruct.io.extract import decode_html
from instruct.io.readers.base import ReadBatch, Reader, Reject, WorkUnit
from instruct.io.readers.html import ExtractOptions, main_text
from instruct.io.streams import TruncationGuard

HTML_TYPES = ("text/html", "application/xhtml+xml")
GZIP_MAGIC = b"\x1f\x8b"
RECORD_END = b"\r\n\r\n"


@dataclass
class WarcOptions(ExtractOptions):
    keep_non_200: bool = False  # keep 2xx/4xx/5xx pages instead of rejecting every status but 200


def open_warc(path: str) -> tuple[IO[bytes], TruncationGuard | None]:
    """A binary stream of the uncompressed WARC (gzip detected by its magic bytes), and its guard if compressed.

    The guard ends a cut gzip stream cleanly, so FastWARC still parses the complete records it
    had read ahead; the guard's `error` then reports the cut."""
    with open(path, "rb") as handle:
        compressed = handle.read(2) == GZIP_MAGIC
    if not compressed:
        return open(path, "rb"), None
    guard = TruncationGuard(gzip.open(path, "rb"))
    return guard, guard


class WarcReader(Reader):
    format = "warc"
    default_source = "web"
    Options: ClassVar[type] = WarcOptions

    def read_unit(self, unit: WorkUnit) -> Iterator[ReadBatch]:
        for path in unit.paths:
            yield from self.batches(self._records(path))

    def _records(self, path: str) -> Iterator[dict | Reject]:
        from fastwarc.warc import ArchiveIterator, WarcRecordType

        number, offset = 0, 0
        try:
            stream, guard = open_warc(path)
            with stream:
                records = ArchiveIterator(stream, record_types=WarcRecordType.response | WarcRecordType.resource,
                                          parse_http=False, fsspec_args=False)
                item: dict | Reject | None = None
                for record in records:
                    number, offset = number + 1, record.stream_pos
                    item = self._document(f"{path}:record {number} @ byte {offset}", record)
                    yield item
            cut_record = isinstance(item, Reject) and item.reason == "truncated_record"
            if guard is not None and guard.error is not None and not cut_record:
                yield self.reject(f"{path}:record {number + 1}", "truncated_file",
                                  f"after the record at uncompressed byte {offset}: {guard.error}")
            elif guard is None and not cut_record and not _ends_cleanly(path):
                yield self.reject(f"{path}:record {number + 1}", "truncated_file",
                                  f"file ends inside a record, after the record at byte {offset}")
        except (EOFError, zlib.error, gzip.BadGzipFile) as error:
            yield self.reject(f"{path}:record {number + 1}", "truncated_file",
                              f"after the record at uncompressed byte {offset}: {error}")
        except OSError as error:
            reason = "unreadable_file" if error.strerror else "invalid_warc"
            yield self.reject(f"{path}:record {number + 1}", reason, error.strerror or str(error))

    def _document(self, where: str, record) -> dict | Reject:
        from fastwarc.warc import WarcRecordType

        url = record.headers.get("WARC-Target-URI", "")
        status, content_type, charset = 200, record.headers.get("Content-Type", ""), None
        if record.record_type == WarcRecordType.response:
            try:
                record.parse_http()  # payloads are stored identity-encoded, as crawlers (Common Crawl) write them
            except (OSError, ValueError) as error:
                return self.reject(where, "invalid_http", f"{url}: {error}")
            if record.http_headers is None:  # the file ends inside this record's HTTP headers
                return self.reject(where, "truncated_record", f"{url}: no complete HTTP headers")
            status, content_type, charset = (record.http_headers.status_code, record.http_content_type or "",
                                             record.http_charset)
        limit = self.config.max_record_bytes
        if record.content_length > limit:  # skipped unread: FastWARC seeks past it to the next record
            return self.reject(where, "too_large", f"{url}: {record.content_length:,} bytes > read.max_record_bytes")
        body = record.reader.read(limit + 1)
        if len(body) < record.content_length:
            return self.reject(where, "truncated_record", f"{url}: {len(body):,} of {record.content_length:,} bytes")
        if status != 200 and not (self.options.keep_non_200 and status):
            return self.reject(where, "http_status", f"{url}: HTTP {status}")
        content_type = content_type.split(";")[0].strip().lower()
        if content_type not in HTML_TYPES:
            return self.reject(where, "not_html", f"{url}: {content_type or 'no content type'}")
        text = main_text(self.options, decode_html(body, charset))
        if text is None:
            return self.reject(where, "no_main_text", url)
        meta = {"warc_record_id": record.record_id, "warc_date": record.headers.get("WARC-Date", ""),
                "content_type": content_type, "html_bytes": len(body), "extractor": self.options.extractor}
        return self.document(text, url or where, meta=meta)


def _ends_cleanly(path: str) -> bool:
    """An uncompressed WARC ends with the blank lines that close its last record."""
    with open(path, "rb") as handle:
        handle.seek(0, 2)
        size = handle.tell()
        handle.seek(max(0, size - len(RECORD_END)))
        return size == 0 or handle.read() == RECORD_END
