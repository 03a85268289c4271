"""Regression tests for the fault and bad-input review (issue 15): one or more per item, each failing before its fix."""
from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import zlib
from collections import Counter
from pathlib import Path

import pytest
import zstandard
from test_readers import read_all
from test_tune_support import tiny_config, tiny_data, tiny_model  # noqa: F401  (fixtures)

from instruct.config import ConfigError, load_yaml
from instruct.io.readers import InputError, ReadConfig
from instruct.io.readers.base import expand_paths


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
    complete = zlib.decompressobj(31).decompress(path.read_bytes()).count(b"\n")  # the readable prefix
    table, rejects = read_all("jsonl", [path])
    assert table.num_rows == complete  # before: 21 complete lines of the read-ahead buffer lost
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


# --- item 18: the dataset reader rejects only the bad rows -------------------------------------------------

def test_dataset_reader_rejects_only_the_bad_line_when_not_strict(tmp_path):
    path = tmp_path / "train.jsonl"
    rows = [json.dumps({"id": f"q{i}", "text": f"row {i}", "label": i % 2}) for i in range(5)]
    path.write_text("\n".join(rows[:2] + ['{"id": "broken", "text": '] + rows[2:]) + "\n")
    table, rejects = read_all("dataset", [path])
    assert table.column("id").to_pylist() == ["q0", "q1", "q2", "q3", "q4"]
    assert [(r.where, r.reason) for r in rejects] == [(f"{path}:3", "invalid_json")]
    with pytest.raises(InputError, match=r"train\.jsonl:3: invalid JSON"):
        read_all("dataset", [path], strict=True)


# --- items 3, 5, 14: resume identity, the output lock, ownership of the output folder ----------------------

def sentences(prefix: str, n: int) -> bytes:
    return b"".join(json.dumps({"id": f"{prefix}{i}", "text": " ".join(f"{prefix}{i}w{j}" for j in range(12))}
                               ).encode() + b"\n" for i in range(n))


def build_dir(tmp_path, output, paths, steps=(), **write):
    from instruct.pipeline.recipe import load_recipe
    from instruct.pipeline.runner import build

    data = {"read": {"format": "jsonl", "paths": [str(p) for p in paths]}, "steps": list(steps),
            "write": {"output": str(output), "shard_size": 1000, **write}}
    return build(load_recipe(None, data=data), data, show_progress=False)


def shard_rows(output) -> int:
    from instruct.io.shards import read_shards

    return read_shards(output).num_rows


def test_rerun_after_an_input_is_deleted_drops_its_shards_and_counts(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.jsonl").write_bytes(sentences("a", 30))
    (tmp_path / "in" / "b.jsonl").write_bytes(sentences("b", 20))
    output = tmp_path / "out"
    assert build_dir(tmp_path, output, [tmp_path / "in" / "*.jsonl"])["counts"]["written"] == 50
    (tmp_path / "in" / "b.jsonl").unlink()
    manifest = build_dir(tmp_path, output, [tmp_path / "in" / "*.jsonl"])
    assert manifest["counts"]["written"] == shard_rows(output) == 30  # before: manifest 30, shards 50
    assert manifest["shards"] == sorted(p.name for p in (output / "shards").glob("*.arrow"))


def test_rerun_redoes_a_changed_input_and_a_changed_eval_set(tmp_path):
    (tmp_path / "in").mkdir()
    first, second = tmp_path / "in" / "a.jsonl", tmp_path / "in" / "b.jsonl"
    first.write_bytes(sentences("a", 10))
    second.write_bytes(sentences("b", 10))
    evals = tmp_path / "eval.jsonl"
    evals.write_bytes(sentences("zzz", 3))
    steps = [{"decontaminate": {"eval_sets": [str(evals)], "ngram": 5}}]
    output = tmp_path / "out"
    assert build_dir(tmp_path, output, [first, second], steps)["counts"]["written"] == 20
    first.write_bytes(sentences("a", 4))  # same name, new content
    assert build_dir(tmp_path, output, [first, second], steps)["counts"]["written"] == shard_rows(output) == 14
    evals.write_bytes(sentences("b", 2))  # the eval set now holds two of b's records
    manifest = build_dir(tmp_path, output, [first, second], steps)
    assert manifest["counts"]["written"] == shard_rows(output) == 12


def test_second_build_into_a_locked_folder_exits_with_one_line(tmp_path):
    from instruct.pipeline.resume import output_lock

    (tmp_path / "a.jsonl").write_bytes(sentences("a", 3))
    recipe = tmp_path / "r.yaml"
    recipe.write_text(json.dumps({"read": {"format": "jsonl", "paths": [str(tmp_path / "a.jsonl")]},
                                  "write": {"output": str(tmp_path / "out")}}))
    with output_lock(tmp_path / "out"):
        run = subprocess.run([sys.executable, "-m", "instruct", "build", str(recipe)], capture_output=True, text=True,
                             timeout=120)
    assert run.returncode == 2 and run.stderr.strip() == f"Error: {tmp_path / 'out'}: in use by another build (pid {os.getpid()})"
    assert not (tmp_path / "out" / "shards").exists()


def test_build_refuses_to_delete_in_a_folder_it_did_not_create(tmp_path):
    (tmp_path / "a.jsonl").write_bytes(sentences("a", 3))
    theirs = tmp_path / "theirs"
    (theirs / "shards").mkdir(parents=True)
    (theirs / "shards" / "precious.arrow").write_bytes(b"mine")
    (theirs / "notes.txt").write_text("keep")
    with pytest.raises(ConfigError, match=r"theirs: not a folder instruct build created .* it has shards"):
        build_dir(tmp_path, theirs, [tmp_path / "a.jsonl"])
    assert (theirs / "shards" / "precious.arrow").read_bytes() == b"mine"
    fresh = tmp_path / "fresh"  # an existing folder without any of the names a build writes is fine
    fresh.mkdir()
    (fresh / "README").write_text("x")
    assert build_dir(tmp_path, fresh, [tmp_path / "a.jsonl"])["counts"]["written"] == 3


# --- items 4, 12, 21: tune resume loads no pickles, resumes only its own run, writes outputs atomically ------

class _Planted:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (Path(self.marker), "code ran"))


@pytest.mark.slow
def test_tune_resume_never_unpickles_and_refuses_another_config(tiny_model, tiny_data, tmp_path):  # noqa: F811
    import torch

    from instruct.tune import train

    out = tmp_path / "out"
    first = train(tiny_config(tiny_model, tiny_data, out, "train.max_steps=2", "train.save_every=1"),
                  show_progress=False)
    assert first.steps == 2 and (out / "adapter_model.safetensors").is_file()
    assert oct((out / "adapter_model.safetensors").stat().st_mode & 0o777) == oct(0o666 & ~current_umask())
    assert (out / "checkpoints" / "step-0000002").stat().st_mode & 0o777 == 0o777 & ~current_umask()
    with pytest.raises(ConfigError, match=r"holds a run with another config \(train\.lr 0\.003 -> 0\.01\)"):
        train(tiny_config(tiny_model, tiny_data, out, "train.max_steps=2", "train.lr=1e-2"), show_progress=False)
    with pytest.raises(ConfigError, match=r"does not match this method's shapes .* was method\.r changed"):
        train(tiny_config(tiny_model, tiny_data, out, "train.max_steps=2", "method.r=4", "train.resume=force"),
              show_progress=False)
    (checkpoint,) = sorted((out / "checkpoints").glob("step-0000002"))
    marker = tmp_path / "pwned"
    torch.save({"optimizer": _Planted(str(marker))}, checkpoint / "optimizer.pt")
    with pytest.raises(ConfigError, match=r"optimizer\.pt: refused to load"):
        train(tiny_config(tiny_model, tiny_data, out, "train.max_steps=3", "train.resume=force"), show_progress=False)
    assert not marker.exists()
    again = train(tiny_config(tiny_model, tiny_data, out, "train.max_steps=2", "train.lr=1e-2", "train.resume=false"),
                  show_progress=False)
    assert again.resumed_from == 0 and again.log[-1]["lr"] != first.log[-1]["lr"]


def current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_atomic_writes_respect_the_umask(tmp_path):
    from instruct.io.shards import write_json

    old = os.umask(0o027)
    try:
        path = write_json({"a": 1}, tmp_path / "x.json")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o640  # before: 0o600 whatever the umask


# --- items 13, 16, 17, 23: endpoint failures, credentials in URLs, the cache key ---------------------------

def synth_cli(tmp_path, base_url: str, *extra: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_BASE_URL", "OPENAI_API_KEY")}
    return subprocess.run([sys.executable, "-m", "instruct", "synth", "--num", "3", "--output", str(tmp_path / "s"),
                           "--base-url", base_url, "--model", "fake", "progress=false", *extra],
                          capture_output=True, text=True, timeout=120, env=env)


@pytest.mark.parametrize("status", [401, 404])
def test_synth_stops_at_the_first_auth_or_routing_failure(tmp_path, status):
    from instruct.serve.engines import FakeEngine
    from instruct.serve.server import Faults, serve_in_thread

    log = tmp_path / "server.jsonl"
    with serve_in_thread(FakeEngine(), request_log=str(log), faults=Faults(10**6, status)) as server:
        url = server.base_url.replace("http://", "http://user:hunter2@")
        run = synth_cli(tmp_path, url)
    assert run.returncode == 2, run.stderr[-2000:]
    (line,) = [x for x in run.stderr.splitlines() if x.startswith("Error:")]
    assert f"HTTP {status}" in line and "hunter2" not in run.stderr and "Traceback" not in run.stderr
    assert len(log.read_text().splitlines()) <= 16  # the first failure stops the run (before: 321 requests)


def test_classify_annotate_stops_at_a_refused_key(tmp_path):
    from instruct.serve.engines import FakeEngine
    from instruct.serve.server import Faults, serve_in_thread

    (tmp_path / "docs.jsonl").write_bytes(lines(5))
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_BASE_URL", "OPENAI_API_KEY")}
    with serve_in_thread(FakeEngine(), faults=Faults(10**6, 401)) as server:
        run = subprocess.run([sys.executable, "-m", "instruct", "classify", "annotate", "--input",
                              str(tmp_path / "docs.jsonl"), "--output", str(tmp_path / "ann"), "--num", "5",
                              "--base-url", server.base_url, "--model", "fake"],
                             capture_output=True, text=True, timeout=120, env=env)
    assert run.returncode == 2 and "HTTP 401" in run.stderr and "Traceback" not in run.stderr, run.stderr[-2000:]


def test_wrong_base_url_is_one_line(tmp_path):
    from instruct.serve.engines import FakeEngine
    from instruct.serve.server import serve_in_thread

    with serve_in_thread(FakeEngine()) as server:
        env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_BASE_URL", "OPENAI_API_KEY")}
        run = subprocess.run([sys.executable, "-m", "instruct", "synth", "--num", "2", "--output", str(tmp_path / "s"),
                              "--base-url", server.base_url.removesuffix("/v1") + "/wrong", "progress=false"],
                             capture_output=True, text=True, timeout=120, env=env)
    assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr[-2000:]
    assert run.stderr.strip().splitlines()[-1].startswith("Error: http://127.0.0.1:") and "HTTP 404" in run.stderr


def test_nothing_written_because_requests_failed_exits_non_zero(tmp_path):
    from instruct.serve.engines import FakeEngine
    from instruct.serve.server import Faults, serve_in_thread

    with serve_in_thread(FakeEngine(), faults=Faults(10**6, 500)) as server:
        run = synth_cli(tmp_path, server.base_url, "client.max_retries=0")
    assert run.returncode == 2 and "Error: wrote nothing:" in run.stderr and "http_500" in run.stderr


def test_synth_manifest_and_cache_carry_no_url_credentials(tmp_path):
    from instruct.serve.engines import FakeEngine
    from instruct.serve.server import serve_in_thread

    with serve_in_thread(FakeEngine()) as server:
        run = synth_cli(tmp_path, server.base_url.replace("http://", "http://user:hunter2@"))
    assert run.returncode == 0, run.stderr[-2000:]
    written = "".join(p.read_text() for p in (tmp_path / "s").rglob("*.json*"))
    assert '"base_url": "http://127.0.0.1:' in written and "hunter2" not in written + run.stderr + run.stdout


def test_recorded_urls_carry_no_credentials_and_cache_keys_name_the_endpoint():
    from instruct.synth.client import ClientConfig, Request, public_url, redact

    url = "http://alice:s3cret@example.org:8000/v1?api_key=abc123&x=1"
    assert public_url(url) == "http://example.org:8000/v1?api_key=<redacted>&x=1"
    assert "s3cret" not in redact(f"connect to {url} failed") and "abc123" not in redact(url)
    assert ClientConfig(base_url=url).public()["base_url"] == public_url(url)
    request = Request(prompt="hi")
    one, other = (ClientConfig(base_url=u, model="m") for u in ("http://a:1/v1", "http://b:1/v1"))
    assert request.key("m", one.cache_scope()) != request.key("m", other.cache_scope())


# --- item 20: template resource limits ---------------------------------------------------------------------

@pytest.mark.parametrize("source", ["{{ 'ab' * 10**9 }}", "{{ 7 ** 99999999 }}",
                                    ("{% for i in range(99999) %}{% for j in range(99999) %}{{ j }}{% endfor %}"
                                     "{% endfor %}"),
                                    "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}",
                                    "{{ text|center(10**9) }}", "{{ '%s'|format(text) * 3000000 }}"])
def test_template_resource_limits_stop_with_one_line(source):
    import time

    from instruct.templates.render import Template, TemplateError

    template = Template(name="bomb", id="b1", jinja=source + " ||| x", dataset="d")
    started = time.perf_counter()
    with pytest.raises(TemplateError, match=r"template 'bomb' .* row id 7: refused by the sandbox: "):
        template.render({"id": 7, "text": "row text"})
    assert time.perf_counter() - started < 10
