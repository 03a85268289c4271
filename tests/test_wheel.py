"""The package as users get it: a wheel installed (not editable) into a fresh venv, used outside the checkout.

Torch and friends come from the system site-packages (`--system-site-packages`), so nothing is
downloaded; the checkout must not be importable, so PYTHONPATH is dropped and the test asserts that
`instruct` is imported from the venv.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def run(*args: str | Path, cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, f"{args}: {done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """(venv bin folder, environment) with the wheel of this checkout installed into the venv."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    source.mkdir()
    shutil.copy(REPO / "setup.py", source)
    shutil.copy(REPO / "README.md", source)
    shutil.copytree(REPO / "instruct", source / "instruct", ignore=shutil.ignore_patterns("__pycache__"))
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "PIP_REQUIRE_VIRTUALENV")}
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", root / "dist", source,
        cwd=root, env=env)
    (wheel,) = (root / "dist").glob("instruct-*.whl")
    run(sys.executable, "-m", "venv", "--system-site-packages", root / "venv", cwd=root, env=env)
    bin_dir = root / "venv" / "bin"
    run(bin_dir / "python", "-m", "pip", "install", "--no-deps", "--no-index", "-q", wheel, cwd=root, env=env)
    return bin_dir, env


@pytest.mark.slow
def test_wheel_ships_templates_seeds_prompts_and_recipes(installed, tmp_path: Path) -> None:
    bin_dir, env = installed
    where = run(bin_dir / "python", "-c", "import instruct; print(instruct.__file__)", cwd=tmp_path, env=env)
    assert Path(where.strip()).is_relative_to(bin_dir.parent), where  # not the checkout, not an editable install

    listed = run(bin_dir / "instruct", "templates", "list", cwd=tmp_path, env=env)
    assert "sentiment" in listed and "nli" in listed

    seeds = run(bin_dir / "python", "-c", "from instruct.synth.run import DEFAULT_SEED_TASKS as p; "
                "from instruct.synth.self_instruct import load_seed_tasks as l; print(p, len(l(p)))",
                cwd=tmp_path, env=env).split()
    assert Path(seeds[0]).is_relative_to(bin_dir.parent) and int(seeds[1]) > 0

    assert "labeled" in run(bin_dir / "instruct", "recipes", "ls", cwd=tmp_path, env=env)
    run(bin_dir / "instruct", "recipes", "cp", "labeled", ".", cwd=tmp_path, env=env)
    run(bin_dir / "instruct", "samples", cwd=tmp_path, env=env)  # the sample data the shipped recipes read
    # labeled.yaml names its templates by library name (`templates: sentiment`)
    run(bin_dir / "instruct", "build", "labeled.yaml", "--output", "out", cwd=tmp_path, env=env)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["counts"]["written"] > 0


@pytest.mark.slow
def test_wheel_builds_the_demo_task_outside_the_checkout(installed, tmp_path: Path) -> None:
    """`instruct demo`'s task recipes ship in the package and name their templates by library name."""
    bin_dir, env = installed
    run(bin_dir / "python", "-m", "instruct.labeled_samples", "--output", "data/generated/unicode_category",
        cwd=tmp_path, env=env)
    recipe = run(bin_dir / "python", "-c", "from instruct.demo import TASK; from instruct.resources import "
                 "resource_path as r; print(r(*TASK, 'train.yaml'))", cwd=tmp_path, env=env).strip()
    assert Path(recipe).is_relative_to(bin_dir.parent)
    run(bin_dir / "instruct", "build", recipe, "--output", "train", cwd=tmp_path, env=env)
    manifest = json.loads((tmp_path / "train" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["counts"]["written"] > 0
