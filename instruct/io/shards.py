"""Arrow IPC shards and JSON files, always written atomically (temp file, fsync, rename).

Shards use the Arrow IPC *file* format (Feather V2): `datasets.load_dataset("arrow", ...)`,
`pyarrow.dataset(..., format="arrow")`, `pyarrow.feather`, `pandas.read_feather`, Ray and DuckDB
all read it, where the stream format is read by `datasets` and `pyarrow.ipc.open_stream` only.
Shards written by older versions (stream format) are still read.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa

FILE_MAGIC = b"ARROW1\0\0"  # an IPC file: this magic (padded to 8 bytes), a stream, a footer


def created_mode(folder: bool = False) -> int:
    """The mode a plain open()/mkdir() would give under the current umask (mkstemp/mkdtemp give 0600/0700)."""
    return (0o777 if folder else 0o666) & ~_umask()


def _umask() -> int:
    """The process umask, read without changing it where /proc allows (os.umask must set to read)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    current = os.umask(0o022)
    os.umask(current)
    return current


def fsync_dir(folder: str | Path) -> None:
    """Make a rename in `folder` durable (the directory entry, not only the file's data)."""
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_files(folder: Path) -> list[Path]:
    """Flush every file under `folder` to disk (before it is renamed into place); returns them, sorted."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    for path in files:
        with open(path, "rb+") as handle:
            os.fsync(handle.fileno())
    return files


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temp path beside `path`; on success it is renamed onto `path`, else removed.

    The file gets the mode a plain `open` would give (0666 less the umask, not mkstemp's 0600), so
    a group sharing a dataset can read it; data and the rename are fsynced.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.fchmod(fd, created_mode())
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextmanager
def atomic_files(folder: str | Path) -> Iterator[Path]:
    """Yield a staging folder inside `folder`; on success each file in it replaces its namesake in `folder`.

    For outputs written by a library's `save_pretrained` (an adapter, a merged model): a kill
    leaves each file either old or new, never half-written.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=folder))
    try:
        yield staging
        for path in fsync_files(staging):
            target = folder / path.relative_to(staging)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.chmod(path, created_mode())
            os.replace(path, target)
        fsync_dir(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@contextmanager
def atomic_dir(target: str | Path) -> Iterator[Path]:
    """Yield a staging folder beside `target`; on success it replaces `target` whole (old one removed)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    old = target.parent / f".{target.name}.old"
    try:
        yield staging
        os.chmod(staging, created_mode(folder=True))
        fsync_files(staging)
        shutil.rmtree(old, ignore_errors=True)
        if target.exists():
            os.replace(target, old)
        os.replace(staging, target)
        fsync_dir(target.parent)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


def write_table(table: pa.Table, path: str | Path) -> Path:
    """Write one Arrow IPC file (random-access format, uncompressed) atomically."""
    with atomic_path(path) as tmp, pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    return Path(path)


def read_table(path: str | Path) -> pa.Table:
    return pa.Table.from_batches(list(iter_batches(path)), schema=read_schema(path))


def iter_batches(path: str | Path) -> Iterator[pa.RecordBatch]:
    """The record batches of an IPC file, or of an IPC stream (shards of older versions).

    A file cut before its footer is read as the stream it starts with, so its complete
    batches are kept and the cut surfaces as an error at the cut (a truncated_file reject).
    """
    with pa.memory_map(str(path), "r") as source:
        try:
            reader = pa.ipc.open_file(source)
        except pa.ArrowInvalid:
            yield from pa.ipc.open_stream(_stream_start(source))
            return
        for index in range(reader.num_record_batches):
            yield reader.get_batch(index)


def read_schema(path: str | Path) -> pa.Schema:
    """The schema of an IPC file or stream, without reading its batches."""
    with pa.memory_map(str(path), "r") as source:
        try:
            return pa.ipc.open_file(source).schema
        except pa.ArrowInvalid:
            return pa.ipc.open_stream(_stream_start(source)).schema


def _stream_start(source: pa.MemoryMappedFile) -> pa.MemoryMappedFile:
    """Position `source` where its IPC stream begins: after the file magic, if the file has one."""
    source.seek(0)
    if source.read(len(FILE_MAGIC)) != FILE_MAGIC:
        source.seek(0)
    return source


def shard_paths(directory: str | Path) -> list[Path]:
    """The finished shards of an output folder (or the folder's shards/ subfolder), in order."""
    directory = Path(directory)
    if (directory / "shards").is_dir():
        directory = directory / "shards"
    return sorted(p for p in directory.glob("*.arrow") if not p.name.startswith("."))


def read_shards(directory: str | Path) -> pa.Table:
    paths = shard_paths(directory)
    if not paths:
        raise FileNotFoundError(f"{directory}: no .arrow shards found")
    return pa.concat_tables([read_table(p) for p in paths])


def write_json(data: Any, path: str | Path) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True, default=str) + "\n",
                       encoding="utf-8")
    return Path(path)


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


class ShardWriter:
    """Split a stream of tables into numbered shard files of at most `rows_per_shard` rows."""

    def __init__(self, directory: str | Path, prefix: str, rows_per_shard: int, schema: pa.Schema | None = None):
        self.directory = Path(directory)
        self.prefix = prefix
        self.rows_per_shard = rows_per_shard
        self.schema = schema
        self.paths: list[Path] = []
        self._pending: list[pa.Table] = []
        self._pending_rows = 0

    def write(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        self._pending.append(table)
        self._pending_rows += table.num_rows
        while self._pending_rows >= self.rows_per_shard:
            self._flush(self.rows_per_shard)

    def close(self) -> list[Path]:
        if self._pending_rows:
            self._flush(self._pending_rows)
        return self.paths

    def _flush(self, rows: int) -> None:
        table = pa.concat_tables(self._pending, promote_options="permissive")
        head, tail = table.slice(0, rows), table.slice(rows)
        path = self.directory / f"{self.prefix}-{len(self.paths):04d}.arrow"
        write_table(head.combine_chunks(), path)
        self.paths.append(path)
        self._pending = [tail] if tail.num_rows else []
        self._pending_rows = tail.num_rows
