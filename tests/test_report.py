"""report.html in a real headless browser: renders without console errors and shows the manifest's numbers."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from sample_inputs import REPO, recipe_on_samples

from instruct.io.shards import read_json
from instruct.pipeline.recipe import load_recipe
from instruct.pipeline.runner import build

BROWSER = next((shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome") if shutil.which(name)),
               None)
needs_browser = pytest.mark.skipif(BROWSER is None, reason="no chromium on PATH (Debian: apt-get install -y chromium)")


def render(page: Path) -> tuple[str, list[str]]:
    """The DOM after scripts ran, and every console message the page produced."""
    result = subprocess.run([BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr",
                             "--v=0", "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout, [line for line in result.stderr.splitlines() if ":CONSOLE" in line]


def text_of(dom: str, element_id: str) -> str:
    match = re.search(rf'id="{re.escape(element_id)}"[^>]*>([^<]*)<', dom)
    assert match, element_id
    return match.group(1)


@pytest.fixture(scope="module")
def web_build(tmp_path_factory, docstrings) -> Path:
    """Documents with duplicates, PII, a non-English page, bad lines and markup that must stay escaped."""
    folder = tmp_path_factory.mktemp("report")
    docs = [{"id": name, "text": text} for name, text in docstrings[:80] if len(text) > 200]
    docs += [{"id": f"copy{i}", "text": docs[0]["text"]} for i in range(4)]
    docs += [{"id": f"mail{i}", "text": docs[i + 1]["text"] + f"\n\nWrite to jane.doe{i}@example.org or call "
              "+1 415 555 0100 for help."} for i in range(3)]
    docs.append({"id": "xss", "text": "<script>alert('x')</script> tiny"})
    docs.append({"id": "de", "text": "Dies ist ein deutscher Text über die Verarbeitung von Daten, der von "
                 "der Sprachprüfung entfernt werden soll, weil er nicht englisch ist. " * 3})
    lines = [json.dumps(d) for d in docs] + ['{"text": <b>broken</b>']
    (folder / "docs.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    recipe = load_recipe(None, data={
        "read": {"format": "jsonl", "paths": [str(folder / "docs.jsonl")]},
        "steps": [{"language": {"languages": ["en"], "min_score": 0.3}},
                  {"gopher_quality": {"min_doc_words": 10, "min_alpha_words_ratio": 0.3}}, "exact_dedup",
                  {"minhash_dedup": {"threshold": 0.7}}, "pii"],
        "write": {"output": str(folder / "out")}})
    build(recipe, show_progress=False)
    return folder / "out"


@needs_browser
def test_report_renders_without_console_errors_and_shows_the_manifest(web_build):
    manifest = read_json(web_build / "manifest.json")
    dom, console = render(web_build / "report.html")
    assert console == []
    counts = manifest["counts"]
    for key in ("read", "written", "rejected"):
        assert text_of(dom, f"count-{key}") == f"{counts[key]:,}"
    for index, step in enumerate(counts["steps"]):
        assert text_of(dom, f"step-{index}-in") == f"{step['in']:,}"
        assert text_of(dom, f"step-{index}-kept") == f"{step['kept']:,}"
        assert text_of(dom, f"step-{index}-dropped") == f"{sum(step['dropped'].values()):,}"
    pii = next(s for s in counts["steps"] if s["step"] == "pii")["counters"]
    assert pii and all(text_of(dom, f"pii-{kind}") == f"{n:,}" for kind, n in pii.items())
    embedded = json.loads(re.search(r'id="manifest-counts">(.*?)</script>', dom).group(1))
    assert embedded["steps"] == counts["steps"]

    assert "<script>alert(" not in dom and "&lt;script&gt;alert(" in dom  # a rejected sample, escaped
    assert "exact_dedup / exact_duplicate" in dom and "read / invalid_json" in dom
    assert "exact_dedup: cluster sizes" in dom and "copy" in dom  # the 5-record cluster is listed
    assert "Languages (meta.language)" in dom and "Length (characters)" in dom
    assert 'href="manifest.json"' in dom and all(f'href="shards/{s}"' in dom for s in manifest["shards"])
    assert not re.search(r">\d+\.\d+<", dom.split("Length (characters)")[1])  # whole-number count ticks only


@needs_browser
def test_steps_that_add_rows_show_added_and_their_real_drops(tmp_path):
    recipe, data = recipe_on_samples(REPO / "pipelines" / "labeled.yaml", tmp_path / "labeled")
    manifest = build(recipe, data, show_progress=False)
    dom, console = render(tmp_path / "labeled" / "report.html")
    assert console == []
    index, template = next((i, s) for i, s in enumerate(manifest["counts"]["steps"]) if s["step"] == "template")
    assert template["added"] > 0
    assert text_of(dom, f"step-{index}-added") == f"{template['added']:,}"
    assert text_of(dom, f"step-{index}-dropped") == f"{sum(template['dropped'].values()):,}"  # never negative
