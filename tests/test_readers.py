"""Every reader on real inputs, and every kind of bad input in both modes.

Default mode: a bad record is a Reject naming file and line/record with a countable reason,
and reading goes on. Strict mode: the same becomes a one-line InputError.
"""
from __future__ import annotations

import abc
import gzip
import inspect
import json
import os
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from sample_inputs import sample_dir

from instruct.config import ConfigError
from instruct.io.readers import InputError, ReadConfig, open_reader
from instruct.io.shards import write_table
from instruct.schema import EXAMPLE_SCHEMA, examples_table, load_meta


def read_all(format_name: str, paths: list[str | Path], strict: bool = False, **settings) -> tuple[pa.Table, list]:
    """All documents and rejects of all units, as the runner would see them."""
    reader = open_reader(ReadConfig(format=format_name, paths=[str(p) for p in paths], **settings), strict=strict)
    tables, rejects = [], []
    for unit in reader.units():
        for batch in reader.read_unit(unit):
            tables.append(batch.table)
            rejects.extend(batch.rejects)
    return pa.concat_tables(tables) if tables else pa.Table.from_pylist([], schema=reader.schema), rejects


def reasons(rejects: list) -> Counter:
    return Counter(r.reason for r in rejects)


# --- JSONL: every bad-record kind, both modes ----------------------------------------------------

GOOD = json.dumps({"id": "a", "text": "A good line of text."}).encode()
BAD_LINES = {
    "invalid_json": b'{"text": "unterminated',
    "invalid_utf8": b'{"text": "caf\xe9"}',
    "missing_text_field": json.dumps({"id": "b", "body": "no text key"}).encode(),
}


@pytest.mark.parametrize("reason", sorted(BAD_LINES))
def test_jsonl_bad_line_is_rejected_with_file_and_line_and_reading_goes_on(tmp_path, reason):
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"\n".join([GOOD, BAD_LINES[reason], GOOD.replace(b'"a"', b'"c"')]) + b"\n")
    table, rejects = read_all("jsonl", [path])
    assert table.column("id").to_pylist() == ["a", "c"]
    assert [(r.where, r.reason) for r in rejects] == [(f"{path}:2", reason)]
    with pytest.raises(InputError) as error:
        read_all("jsonl", [path], strict=True)
    message = str(error.value)
    assert f"{path}:2" in message and reason in message and "\n" not in message


@pytest.mark.parametrize("suffix", ["gz", "zst"])
def test_truncated_compressed_file_is_a_reject_after_the_lines_read_so_far(tmp_path, suffix, docstrings):
    lines = b"".join(json.dumps({"text": text}).encode() + b"\n" for _, text in docstrings)
    whole = gzip.compress(lines) if suffix == "gz" else zstandard.ZstdCompressor().compress(lines)
    path = tmp_path / f"cut.jsonl.{suffix}"
    path.write_bytes(whole[: len(whole) // 2])
    table, rejects = read_all("jsonl", [path])
    assert 0 < table.num_rows < len(docstrings)
    assert reasons(rejects) == {"truncated_file": 1}
    assert rejects[0].where == f"{path}:{table.num_rows + 1}"
    with pytest.raises(InputError, match="truncated_file"):
        read_all("jsonl", [path], strict=True)


def test_unreadable_file_is_a_reject(tmp_path):
    (tmp_path / "folder.jsonl").mkdir()  # matches the glob, cannot be read as a file (even by root)
    (tmp_path / "ok.jsonl").write_bytes(GOOD + b"\n")
    table, rejects = read_all("jsonl", [tmp_path / "*.jsonl"])
    assert table.num_rows == 1
    assert [(Path(r.where.rsplit(":", 1)[0]).name, r.reason) for r in rejects] == [("folder.jsonl", "unreadable_file")]
    with pytest.raises(InputError, match="folder.jsonl:1: unreadable_file"):
        read_all("jsonl", [tmp_path / "*.jsonl"], strict=True)


def test_missing_input_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_all("jsonl", [tmp_path / "nothing-*.jsonl"])


def test_reader_options_are_type_checked():
    with pytest.raises(ConfigError, match="read.options: unknown key"):
        open_reader(ReadConfig(format="html", paths=["x"], options={"extracter": "trafilatura"}))
    with pytest.raises(ConfigError, match="unknown HTML extractor"):
        read_all("html", [sample_dir() / "html" / "links.html"], options={"extractor": "nope"})


# --- WARC -----------------------------------------------------------------------------------------

def test_warc_responses_become_main_text_documents():
    table, rejects = read_all("warc", [sample_dir() / "web" / "*.warc.gz"])
    assert reasons(rejects) == {"not_html": 1}  # the PNG response; warcinfo records are not documents
    rows = {row["url_or_path"]: row for row in table.to_pylist()}
    guide = rows["https://docs.example.org/guide/json.html"]
    assert "JSON (JavaScript Object Notation)" in guide["text"]
    for boilerplate in ("We use cookies", "All rights reserved", "Subscribe to our newsletter", "Contact sales"):
        assert boilerplate not in guide["text"]
    meta = load_meta(guide["meta"])
    assert meta["content_type"] == "text/html" and meta["extractor"] == "resiliparse"
    assert guide["source"] == "web"


def test_trafilatura_is_selectable_and_drops_boilerplate_too():
    path = sample_dir() / "html" / "guide-abc.html"
    table, _ = read_all("html", [path], options={"extractor": "trafilatura"})
    (text,) = table.column("text").to_pylist()
    assert inspect.getdoc(abc.ABCMeta).splitlines()[0] in text and "We use cookies" not in text
    assert load_meta(table.column("meta")[0].as_py())["extractor"] == "trafilatura"


@pytest.mark.parametrize("compressed,cut", [(True, "body"), (False, "body"), (False, "header")])
def test_truncated_warc_names_file_and_record_and_keeps_what_came_before(tmp_path, compressed, cut):
    source = sample_dir() / "web" / "crawl-00000.warc.gz"
    data = source.read_bytes() if compressed else gzip.decompress(source.read_bytes())
    end = len(data) // 2 if cut == "body" else data.index(b"\r\n\r\nWARC/1.", len(data) // 2) + 30
    path = tmp_path / ("cut.warc.gz" if compressed else "cut.warc")
    path.write_bytes(data[:end])
    table, rejects = read_all("warc", [path])
    assert table.num_rows > 10
    (reject,) = [r for r in rejects if r.reason in ("truncated_file", "truncated_record")]
    assert reject.where.startswith(f"{path}:record ")
    with pytest.raises(InputError) as error:
        read_all("warc", [path], strict=True)
    assert str(error.value).startswith(f"{path}:record ") and "truncated" in str(error.value)


def test_garbage_is_not_a_warc(tmp_path):
    path = tmp_path / "notes.warc"
    path.write_bytes(b"this is not a WARC file\n" * 50)
    table, rejects = read_all("warc", [path])
    assert table.num_rows == 0 and reasons(rejects) == {"invalid_warc": 1}


# --- HTML, text, code -----------------------------------------------------------------------------

def test_html_files_low_quality_and_main_text():
    table, rejects = read_all("html", [sample_dir() / "html"], options={"files_per_unit": 5})
    files = {Path(p).name: t for p, t in zip(table.column("url_or_path").to_pylist(), table.column("text").to_pylist())}
    assert len(files) + len(rejects) == len(os.listdir(sample_dir() / "html"))
    assert "cheap deals 7" in files["links.html"]  # kept by the reader: dropping it is the filters' job
    assert all("Accept all cookies" not in text for text in files.values())


def test_text_folder_groups_files_into_units_and_rejects_invalid_utf8(tmp_path):
    books = sample_dir() / "books"
    names = sorted(os.listdir(books))
    reader = open_reader(ReadConfig(format="text", paths=[str(books)], options={"files_per_unit": 10}))
    units = reader.units()
    assert len(units) == -(-len(names) // 10) and sum(len(u.paths) for u in units) == len(names)
    assert len({u.key for u in units}) == len(units)
    table, rejects = read_all("text", [books])
    assert table.num_rows == len(names) and not rejects
    assert load_meta(table.column("meta")[0].as_py())["file"] == names[0]

    bad = tmp_path / "latin1.txt"
    bad.write_bytes("line one\nline two is caf\xe9\n".encode("latin-1"))
    (tmp_path / "empty.txt").write_text("  \n")
    os.symlink(tmp_path / "gone.txt", tmp_path / "dangling.txt")
    table, rejects = read_all("text", [tmp_path])
    assert table.num_rows == 0
    assert sorted((Path(r.where).name, r.reason) for r in rejects) == [
        ("dangling.txt", "unreadable_file"), ("empty.txt", "empty_file"), ("latin1.txt:2", "invalid_utf8")]
    with pytest.raises(InputError, match="latin1.txt:2: invalid_utf8"):
        read_all("text", [bad], strict=True)


def test_code_tree_languages_and_skipped_files():
    table, rejects = read_all("code", [sample_dir() / "code"])
    skipped = {(Path(r.where).name, r.reason) for r in rejects}
    assert {("node_modules", "vendored_dir"), ("logo.png", "binary"), ("app.min.js", "minified"),
            ("bundle.js", "minified")} <= skipped
    assert reasons(rejects) - Counter({"empty_file": 99}) == Counter(
        {"vendored_dir": 1, "binary": 1, "minified": 2})  # empty __init__.py files aside
    metas = [load_meta(m) for m in table.column("meta").to_pylist()]
    languages = Counter(m["language"] for m in metas)
    assert languages["markdown"] == 1 and languages["python"] == table.num_rows - 1
    by_file = {m["file"]: m for m in metas}
    assert by_file["src/json/decoder.py"]["lines"] > 100 and by_file["src/json/decoder.py"]["repo"] == "code"


# --- Parquet and Arrow ----------------------------------------------------------------------------

def test_parquet_maps_fields_and_rejects_rows_without_text(tmp_path):
    path = tmp_path / "corpus.parquet"
    pq.write_table(pa.table({"content": ["first text", None, "third text"], "doc": [10, 11, 12],
                             "url": ["https://a", "https://b", None], "lang": ["en", "en", "de"]}), path,
                   row_group_size=2)
    table, rejects = read_all("parquet", [path], text_field="content", id_field="doc", batch_size=1)
    assert table.column("id").to_pylist() == ["10", "12"]
    assert table.column("url_or_path").to_pylist() == ["https://a", f"{path}#2"]
    assert [load_meta(m) for m in table.column("meta").to_pylist()] == [{"lang": "en"}, {"lang": "de"}]
    assert [(r.where, r.reason) for r in rejects] == [(f"{path}#1", "missing_text_field")]

    broken = tmp_path / "broken.parquet"
    broken.write_bytes(path.read_bytes()[:-30])
    _, rejects = read_all("parquet", [broken])
    assert reasons(rejects) == {"unreadable_file": 1}


def example_shard(path: Path, n: int = 5) -> pa.Table:
    table = examples_table([{"id": f"ex{i}", "source": "unit-test", "meta": {"i": i},
                             "messages": [{"role": "user", "content": f"question {i}"},
                                          {"role": "assistant", "content": f"answer {i}"}]} for i in range(n)])
    write_table(table, path)
    return table


def test_example_shards_pass_through_unchanged(tmp_path):
    original = example_shard(tmp_path / "part-0.arrow")
    reader = open_reader(ReadConfig(format="arrow", paths=[str(tmp_path / "*.arrow")]))
    assert reader.schema == EXAMPLE_SCHEMA
    table, rejects = read_all("arrow", [tmp_path / "*.arrow"])
    assert not rejects and table.equals(original)


def test_arrow_file_format_other_columns_and_mixed_schemas(tmp_path):
    plain = pa.table({"text": ["alpha", "beta"], "score": [0.5, 0.7]})
    with pa.OSFile(str(tmp_path / "a.arrow"), "wb") as sink, pa.ipc.new_file(sink, plain.schema) as writer:
        writer.write_table(plain)  # IPC *file* format, as pyarrow.feather / other tools write it
    table, _ = read_all("arrow", [tmp_path / "a.arrow"])
    assert table.column("text").to_pylist() == ["alpha", "beta"]
    assert load_meta(table.column("meta")[1].as_py()) == {"score": 0.7}

    example_shard(tmp_path / "b.arrow")
    with pytest.raises(InputError, match="b.arrow: holds EXAMPLE rows but the first input holds DOCUMENT"):
        read_all("arrow", [tmp_path / "a.arrow", tmp_path / "b.arrow"])


@pytest.mark.parametrize("kind", ["file", "stream"])  # shards now; shards of older versions
def test_truncated_arrow_shard_is_a_reject(tmp_path, kind):
    table = example_shard(tmp_path / "whole.arrow")
    if kind == "stream":
        with pa.OSFile(str(tmp_path / "whole.arrow"), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as out:
            out.write_table(table)
    data = (tmp_path / "whole.arrow").read_bytes()
    path = tmp_path / "cut.arrow"
    path.write_bytes(data[: len(data) // 2])  # inside the only record batch
    table, rejects = read_all("arrow", [path])
    assert table.num_rows == 0 and reasons(rejects) == {"truncated_file": 1}
    assert rejects[0].where == f"{path}#0"
