"""Regression tests for the fault and bad-input review (issue 15): one or more per item, each failing before its fix."""
from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pytest
import zstandard

from instruct.config import ConfigError, load_yaml
from instruct.io.readers import InputError, ReadConfig, open_reader
from instruct.io.readers.base import expand_paths


def read_all(format_name: str, paths: list, strict: bool = False, **settings) -> tuple[pa.Table, list]:
    reader = open_reader(ReadConfig(format=format_name, paths=[str(p) for p in paths], **settings), strict=strict)
    tables, rejects = [], []
    for unit in reader.units():
        for batch in reader.read_unit(unit):
            tables.append(batch.table)
            rejects.extend(batch.rejects)
    return pa.concat_tables(tables) if tables else reader.schema.empty_table(), rejects


def reasons(rejects: list) -> Counter:
    return Counter(r.reason for r in rejects)


def lines(n: int, start: int = 0) -> bytes:
    return b"".join(json.dumps({"id": f"r{i}", "text": f"record number {i} " * 3}).encode() + b"\n"
                    for i in range(start, start + n))


# --- item 2: a lone surrogate is one invalid_unicode reject, the batch survives --------------------------

def test_lone_surrogate_rejects_only_its_record(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_bytes(lines(2) + b'{"text": "bad \\ud800 here"}\n' + b'{"text": "pair \\ud83d\\ude00 ok"}\n')
    table, rejects = read_all("jsonl", [path])
    assert table.num_rows == 3 and reasons(rejects) == {"invalid_unicode": 1}
    assert rejects[0].where == f"{path}:3"
    with pytest.raises(InputError, match=r"s\.jsonl:3: invalid_unicode"):
        read_all("jsonl", [path], strict=True)


def test_a_row_arrow_cannot_hold_is_rejected_alone():
    from instruct.io.readers.jsonl import JsonlReader

    reader = JsonlReader(ReadConfig(paths=[]))
    rows = [reader.document("fine", "f:1"), reader.document("also \ud800", "f:2"), reader.document("ok", "f:3")]
    batch = reader._batch(rows, [])
    assert batch.table.column("text").to_pylist() == ["fine", "ok"]
    assert [(r.where, r.reason) for r in batch.rejects] == [("f:2", "invalid_record")]


# --- item 10: deep nesting is invalid JSON ----------------------------------------------------------------

def test_deeply_nested_json_is_an_invalid_json_reject(tmp_path):
    path = tmp_path / "deep.jsonl"
    path.write_bytes(lines(1) + b'{"text": "x", "m": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n" + lines(1, 1))
    table, rejects = read_all("jsonl", [path])
    assert table.num_rows == 2 and [(r.where, r.reason) for r in rejects] == [(f"{path}:2", "invalid_json")]


# --- item 15: read.max_record_bytes -----------------------------------------------------------------------

def test_over_long_jsonl_line_is_too_large_and_skipped(tmp_path):
    path = tmp_path / "big.jsonl"
    path.write_bytes(lines(1) + json.dumps({"text": "y" * 50_000}).encode() + b"\n" + lines(1, 1))
    table, rejects = read_all("jsonl", [path], max_record_bytes=10_000)
    assert table.column("id").to_pylist() == ["r0", "r1"]
    assert [(r.where, r.reason) for r in rejects] == [(f"{path}:2", "too_large")]


def test_warc_body_over_the_limit_is_too_large(tmp_path):
    from instruct.samples import write_warc

    path = tmp_path / "w.warc.gz"
    page = "<html><body><p>{}</p></body></html>"
    write_warc(path, [("http://a/1", page.format("short page text. " * 20)),
                      ("http://a/2", page.format("long page text. " * 2000)),
                      ("http://a/3", page.format("another short page. " * 20))])
    table, rejects = read_all("warc", [path], max_record_bytes=5_000)
    assert table.num_rows == 2 and reasons(rejects) == {"too_large": 1}
    assert rejects[0].where.startswith(f"{path}:record 2")


# --- item 19: cut compressed input keeps every complete record ---------------------------------------------

def test_cut_gzip_jsonl_keeps_every_complete_line(tmp_path):
    data = lines(20_000)
    packed = gzip.compress(data)
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(packed[: len(packed) * 3 // 4])
    decompressed = gzip.decompress  # the readable prefix, as zlib itself sees it
    import zlib

    prefix = zlib.decompressobj(31).decompress(path.read_bytes())
    complete = prefix.count(b"\n")
    table, rejects = read_all("jsonl", [path])
    assert decompressed and table.num_rows == complete
    assert [(r.where, r.reason) for r in rejects] == [(f"{path}:{complete + 1}", "truncated_file")]


def test_cut_gzip_warc_keeps_the_complete_records(tmp_path):
    from instruct.samples import write_warc

    path = tmp_path / "six.warc.gz"
    page = "<html><body><p>Page {} has enough words to be a page of text.</p></body></html>"
    write_warc(path, [(f"http://a/{i}", page.format(i)) for i in range(6)])
    members, data = [], path.read_bytes()
    start = 0
    while start < len(data):  # each WARC record is its own gzip member: cut in the middle of the 6th page
        d = zlib_member_end(data, start)
        members.append(d)
        start = d
    cut = tmp_path / "cut.warc.gz"
    cut.write_bytes(data[: (members[4] + members[5]) // 2])  # warcinfo + 4 pages + half of the 5th
    table, rejects = read_all("warc", [cut])
    assert table.num_rows == 4 and len(rejects) == 1 and rejects[0].reason.startswith("truncated_")  # before: 0 kept


def zlib_member_end(data: bytes, start: int) -> int:
    import zlib

    member = zlib.decompressobj(31)
    member.decompress(data[start:])
    return len(data) - len(member.unused_data)


# --- item 8: decompression bombs ----------------------------------------------------------------------------

def test_zstd_bomb_streams_in_bounded_memory_and_linear_time(tmp_path):
    import resource
    import time

    path = tmp_path / "bomb.jsonl.zst"
    path.write_bytes(zstandard.ZstdCompressor(level=19).compress(b'{"text": "' + b"a" * (150 << 20) + b'"}\n'))
    assert path.stat().st_size < 64 << 10
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    table, rejects = read_all("jsonl", [path], max_record_bytes=1 << 20)
    assert table.num_rows == 0 and reasons(rejects) == {"too_large": 1}
    assert time.perf_counter() - started < 20  # before: still running after 300 s
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100 << 10  # KiB: < 100 MB more


def test_gzip_bomb_is_bounded_by_max_file_bytes_decompressed(tmp_path):
    (tmp_path / "books").mkdir()
    path = tmp_path / "books" / "bomb.txt.gz"
    path.write_bytes(gzip.compress(b"word " * (4 << 20)))
    table, rejects = read_all("text", [tmp_path / "books"], options={"max_file_bytes": 1 << 20})
    assert table.num_rows == 0 and reasons(rejects) == {"too_large": 1}
    assert "decompresses to over" in rejects[0].detail


# --- item 9: ** globs and symlink loops ---------------------------------------------------------------------

def test_recursive_glob_survives_symlink_loops_and_names_each_file_once(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "x.jsonl").write_bytes(lines(1))
    (tmp_path / "a" / "b" / "y.jsonl").write_bytes(lines(1, 1))
    os.symlink(tmp_path / "a", tmp_path / "a" / "b" / "loop")  # two loops
    os.symlink(tmp_path / "a" / "b", tmp_path / "a" / "again")
    found = expand_paths([str(tmp_path / "**" / "*.jsonl")])
    assert found == [str(tmp_path / "a" / "b" / "y.jsonl"), str(tmp_path / "a" / "x.jsonl")]
    assert expand_paths([str(tmp_path / "a" / "**" / "b" / "*.jsonl")]) == [str(tmp_path / "a" / "b" / "y.jsonl")]


# --- item 11: sizes validated ------------------------------------------------------------------------------

@pytest.mark.parametrize("override", ["write.shard_size=0", "write.shard_size=-3", "read.batch_size=0",
                                      "read.max_record_bytes=0"])
def test_sizes_below_one_are_config_errors(override):
    from instruct.pipeline.recipe import load_recipe

    with pytest.raises(ConfigError, match=override.split("=")[0].replace(".", r"\.") + ": must be at least 1"):
        load_recipe(None, [override, "read.paths=[x]"])


# --- item 17: non-UTF-8 recipe ------------------------------------------------------------------------------

def test_non_utf8_recipe_is_one_line_error(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_bytes(b"read:\n  format: jsonl\n  source: caf\xe9\n")
    with pytest.raises(ConfigError, match=r"r\.yaml:3: recipe is not UTF-8 text \(byte 0xe9\)"):
        load_yaml(path)
