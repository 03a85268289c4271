"""`--strict` stops at corrupt input, not at expected skips (a PNG or a redirect in a crawl)."""
from __future__ import annotations

import gzip

import pytest
from sample_inputs import REPO, recipe_on_samples, sample_dir

from instruct.io.readers import InputError
from instruct.io.readers.base import EXPECTED_SKIPS
from instruct.pipeline.runner import build


def test_strict_build_of_the_sample_crawl_counts_its_skips_and_succeeds(tmp_path):
    recipe, data = recipe_on_samples(REPO / "pipelines" / "web.yaml", tmp_path / "out", ["steps=[]", "strict=true"])
    manifest = build(recipe, data, show_progress=False)
    skipped = manifest["counts"]["steps"][0]["dropped"]
    assert skipped and set(skipped) <= EXPECTED_SKIPS, skipped  # e.g. not_html for the crawl's images
    assert manifest["counts"]["written"] > 0


def test_strict_still_stops_at_a_cut_warc(tmp_path):
    data = gzip.decompress((sample_dir() / "web" / "crawl-00000.warc.gz").read_bytes())
    (tmp_path / "cut.warc").write_bytes(data[: len(data) // 2])
    recipe, raw = recipe_on_samples(REPO / "pipelines" / "web.yaml", tmp_path / "out",
                                    ["steps=[]", "strict=true", f"read.paths=[{tmp_path / 'cut.warc'}]"])
    with pytest.raises(InputError, match=r"cut.warc:record \d+ .*: truncated_record"):
        build(recipe, raw, show_progress=False)
