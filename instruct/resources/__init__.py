"""Files shipped inside the package: template library, prompts, seed tasks, sample data and recipes.

Found through `importlib.resources`, so a wheel installed anywhere has them; nothing here reaches
outside the package. The checkout's top-level `pipelines/`, `templates/` and `trainer/` are links here.
"""
from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path

# recipe kind -> resource folder, in the order `instruct recipes ls` lists them
RECIPE_FOLDERS = {"pipelines": "build, mix and synth recipes", "trainer": "tune configs"}


def resource_path(*parts: str) -> Path:
    """A shipped file or folder as a filesystem path (pip always unpacks wheels, so one exists)."""
    return Path(os.fspath(files(__name__).joinpath(*parts)))


def templates_dir() -> Path:
    """The template library (`instruct templates list`)."""
    return resource_path("templates")


def seed_tasks() -> Path:
    """The default Self-Instruct seed tasks."""
    return resource_path("data", "seed_tasks.jsonl")


def dialogue_topics() -> Path:
    """The default dialogue seed topics."""
    return resource_path("data", "dialogue_topics.txt")


def annotation_prompts() -> Path:
    """The default quality-annotation prompts."""
    return resource_path("prompts", "quality_annotation.yaml")


def labeled_samples() -> Path:
    """Small labeled datasets (sentiment, NLI, extractive QA) that `instruct samples` copies out."""
    return resource_path("samples", "labeled")
