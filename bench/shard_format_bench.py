"""Write and read cost of Arrow IPC *file* shards (now) against IPC *stream* shards (before issue 17).

    python bench/shard_format_bench.py [--rows 200000] [--repeat 5]

Rows are real stdlib docstrings (DOCUMENT schema) repeated to `--rows`; each format is written
and read back whole `--repeat` times through a fresh file, best time kept. The file format adds
a footer (schema + batch offsets), which is what lets pyarrow.dataset, pandas and DuckDB open it.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

import pyarrow as pa

from instruct.corpus import stdlib_docstrings
from instruct.schema import documents_table


def write(table: pa.Table, path: str, kind: str) -> None:
    new = pa.ipc.new_file if kind == "file" else pa.ipc.new_stream
    with pa.OSFile(path, "wb") as sink, new(sink, table.schema) as writer:
        writer.write_table(table, max_chunksize=50_000)


def read(path: str, kind: str) -> pa.Table:
    with pa.memory_map(path, "r") as source:
        reader = pa.ipc.open_file(source) if kind == "file" else pa.ipc.open_stream(source)
        return reader.read_all()


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    docs = list(stdlib_docstrings(limit=2000))
    texts = [text for _, text in docs] * (args.rows // len(docs) + 1)
    table = documents_table([{"id": str(i), "text": t, "source": "bench", "url_or_path": "x", "meta": "{}"}
                             for i, t in enumerate(texts[:args.rows])])
    with tempfile.TemporaryDirectory() as folder:
        for kind in ("stream", "file"):
            path = os.path.join(folder, f"{kind}.arrow")
            w = best(lambda path=path, kind=kind: write(table, path, kind), args.repeat)
            r = best(lambda path=path, kind=kind: read(path, kind).num_rows, args.repeat)
            mib = os.path.getsize(path) / 2**20
            print(f"{kind:6s}: {mib:7.1f} MiB  write {w * 1000:7.1f} ms ({mib / w:6.0f} MiB/s)  "
                  f"read {r * 1000:6.1f} ms")


if __name__ == "__main__":
    main()
