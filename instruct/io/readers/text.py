"""Folders of files, one file = one document (books, notes); the base of the code and html readers.

Small files are grouped into units of up to `files_per_unit` files or `bytes_per_unit` bytes,
so that a folder of many small files still gives the process pool enough work units and a
resumed run redoes little. Paths may name files, folders (walked recursively, in sorted order)
or globs; inside a folder only files with the reader's extensions are taken.

    read: {format: text, paths: [data/generated/books/], options: {files_per_unit: 32}}
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Iterator

from instruct.config import require_positive
from instruct.io.readers.base import ReadBatch, Reader, Reject, WorkUnit, expand_paths, unit_key
from instruct.io.streams import TRUNCATION_ERRORS, open_text_stream
from instruct.schema import content_id


@dataclass
class FilesOptions:
    """`read.options` shared by the folder readers."""

    files_per_unit: int = 64
    bytes_per_unit: int = 64 << 20
    extensions: list[str] = field(default_factory=list)  # files taken inside folders; empty: the reader's
    max_file_bytes: int = 64 << 20  # larger files (decompressed) are rejected as too_large, never held whole

    def __post_init__(self) -> None:
        require_positive(self, "read.options", "files_per_unit", "bytes_per_unit", "max_file_bytes")


class FilesReader(Reader):
    """One document per file; subclasses turn a file's bytes into a document (`parse`)."""

    extensions: ClassVar[tuple[str, ...]] = ()  # empty: every file in a folder
    Options: ClassVar[type] = FilesOptions
    _roots: list[str] | None = None

    # enumeration -------------------------------------------------------------------------------
    def entries(self) -> list[str]:
        """Every input entry: files, and folders skipped on purpose (see `skip_dir`)."""
        found: list[str] = []
        for path in expand_paths(self.config.paths):
            found.extend(self._walk(path) if os.path.isdir(path) else [path])
        return list(dict.fromkeys(found))

    def root_of(self, path: str) -> str:
        """The input folder a file was found in (its own folder for files named directly)."""
        if self._roots is None:
            self._roots = sorted((p for p in expand_paths(self.config.paths) if os.path.isdir(p)), key=len)
        inside = [root for root in self._roots if path.startswith(os.path.join(root, ""))]
        return inside[-1] if inside else os.path.dirname(path)

    def _walk(self, root: str) -> Iterator[str]:
        extensions = tuple(self.options.extensions) or self.extensions
        for folder, subfolders, files in os.walk(root):
            subfolders.sort()
            for name in list(subfolders):
                if self.skip_dir(name):
                    subfolders.remove(name)
                    yield os.path.join(folder, name)
            for name in sorted(files):
                if not extensions or name.lower().endswith(extensions):
                    yield os.path.join(folder, name)

    def skip_dir(self, name: str) -> str | None:
        """A reason to skip (and count) a whole folder, e.g. vendored code; None to walk it."""
        return None

    def units(self) -> list[WorkUnit]:
        units, group, size = [], [], 0
        for path in self.entries():
            entry_size = os.path.getsize(path) if os.path.isfile(path) else 0
            if group and (len(group) >= self.options.files_per_unit or size + entry_size > self.options.bytes_per_unit):
                units.append(self._unit(group))
                group, size = [], 0
            group.append(path)
            size += entry_size
        if group:
            units.append(self._unit(group))
        return units

    @staticmethod
    def _unit(group: list[str]) -> WorkUnit:
        key = unit_key(group[0]) if len(group) == 1 else f"{unit_key(group[0])}-{content_id(*group)[:6]}"
        return WorkUnit(key=key, paths=tuple(group))

    # reading -----------------------------------------------------------------------------------
    def read_unit(self, unit: WorkUnit) -> Iterator[ReadBatch]:
        yield from self.batches(self._documents(unit))

    def _documents(self, unit: WorkUnit) -> Iterator[dict | Reject]:
        for path in unit.paths:
            skipped = os.path.isdir(path) and self.skip_dir(os.path.basename(path))
            if skipped:
                yield self.reject(path, skipped, "folder skipped, not walked")
                continue
            data = yield from self._read_bytes(path)
            if data is not None:
                yield self.parse(path, self.root_of(path), data)

    def _read_bytes(self, path: str) -> Iterator[Reject]:
        """Generator returning the file's (decompressed) bytes, or None after yielding a Reject."""
        try:
            size = os.path.getsize(path)
            if size > self.options.max_file_bytes:
                yield self.reject(path, "too_large", f"{size:,} bytes > max_file_bytes")
                return None
            with open_text_stream(path) as stream:
                data = stream.read(self.options.max_file_bytes + 1)  # a decompression bomb stops here
            if len(data) > self.options.max_file_bytes:
                yield self.reject(path, "too_large", f"decompresses to over {self.options.max_file_bytes:,} bytes "
                                  "(max_file_bytes)")
                return None
            return data
        except TRUNCATION_ERRORS as error:
            yield self.reject(path, "truncated_file", str(error) or type(error).__name__)
        except OSError as error:
            yield self.reject(path, "unreadable_file", error.strerror or str(error))
        return None

    def parse(self, path: str, root: str, data: bytes) -> dict | Reject:
        raise NotImplementedError

    def decode_utf8(self, path: str, data: bytes) -> str | Reject:
        """Strict UTF-8 (BOM dropped); an invalid byte is a reject naming its line."""
        try:
            return data.decode("utf-8-sig")
        except UnicodeDecodeError as error:
            line = data.count(b"\n", 0, error.start) + 1
            return self.reject(f"{path}:{line}", "invalid_utf8", str(error), data.decode("utf-8", "replace"))


class TextReader(FilesReader):
    """Plain text files (optionally .gz/.zst); the whole file is the document's text."""

    format = "text"
    default_source = "books"
    extensions = (".txt", ".text", ".md", ".rst", ".txt.gz", ".txt.zst")

    def parse(self, path: str, root: str, data: bytes) -> dict | Reject:
        text = self.decode_utf8(path, data)
        if isinstance(text, Reject):
            return text
        if not text.strip():
            return self.reject(path, "empty_file")
        return self.document(text, path, meta=file_meta(path, root, data))


def file_meta(path: str, root: str, data: bytes, **extra: Any) -> dict[str, Any]:
    """Where a file came from relative to the folder it was found in, and its size."""
    relative = os.path.relpath(path, root) if root else Path(path).name
    return {"file": relative, "bytes": len(data), **extra}
