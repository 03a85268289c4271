"""Shards are Arrow IPC files that every common reader opens; stream shards of older versions still read."""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as pads
import pytest
from pyarrow import feather

from instruct.io.shards import ShardWriter, read_shards, read_table, shard_paths
from instruct.pipeline.recipe import load_recipe
from instruct.pipeline.runner import build


@pytest.fixture(scope="module")
def built(tmp_path_factory, docstrings) -> Path:
    """A real build over 120 docstrings in two files, into `out/shards/*.arrow`."""
    folder = tmp_path_factory.mktemp("formats")
    for part in range(2):
        lines = [json.dumps({"id": name, "text": text}) for name, text in docstrings[part * 60:(part + 1) * 60]]
        (folder / f"part-{part}.jsonl").write_text("\n".join(lines) + "\n")
    recipe = load_recipe(None, [f"read.paths=[{folder}/*.jsonl]", f"write.output={folder / 'out'}",
                                "write.shard_size=25"])
    manifest = build(recipe, show_progress=False)
    assert manifest["counts"]["written"] > 50 and len(shard_paths(folder / "out")) > 2
    return folder / "out"


def test_datasets_reads_the_shards(built):
    import datasets

    loaded = datasets.load_dataset("arrow", data_files=str(built / "shards" / "*.arrow"), split="train",
                                   cache_dir=str(built.parent / "hf"))
    assert loaded.num_rows == read_shards(built).num_rows
    assert set(loaded.column_names) == {"id", "text", "source", "url_or_path", "meta"}


def test_pyarrow_dataset_feather_and_pandas_read_the_shards(built):
    expected = read_shards(built)
    dataset = pads.dataset(str(built / "shards"), format="arrow")
    assert dataset.to_table().num_rows == expected.num_rows
    first = shard_paths(built)[0]
    assert feather.read_table(str(first)).equals(read_table(first))
    import pandas

    frame = pandas.read_feather(first)
    assert list(frame["id"]) == read_table(first).column("id").to_pylist()


def test_duckdb_reads_the_shards(built):
    duckdb = pytest.importorskip("duckdb", reason="duckdb is not installed")
    connection = duckdb.connect()
    connection.register("shards", pads.dataset(str(built / "shards"), format="arrow"))  # scanned in place
    [(count, longest)] = connection.sql("select count(*), max(length(text)) from shards").fetchall()
    assert count == read_shards(built).num_rows
    assert longest == max(len(t) for t in read_shards(built).column("text").to_pylist())


@pytest.mark.slow
def test_ray_reads_the_shards(built):
    ray = pytest.importorskip("ray", reason="the ray extra is not installed")
    started = not ray.is_initialized()
    if started:
        ray.init(address="local", num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        dataset = ray.data.from_arrow(pads.dataset(str(built / "shards"), format="arrow").to_table())
        assert dataset.count() == read_shards(built).num_rows
    finally:
        if started:
            ray.shutdown()


def test_old_stream_shards_still_read(tmp_path):
    table = pa.table({"id": ["a", "b"], "text": ["one", "two"]})
    path = tmp_path / "shards" / "old-0000.arrow"
    path.parent.mkdir()
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    assert read_table(path).equals(table)
    writer = ShardWriter(tmp_path / "shards", "new", 10)
    writer.write(table)
    writer.close()
    assert read_shards(tmp_path).num_rows == 4  # an old and a new shard side by side
