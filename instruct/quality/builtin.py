"""The built-in junk classifier: trained on first use from this Python installation, then cached.

Good pages are Python's own documentation (stdlib docstrings grouped by module, the pydoc
reference topics); bad pages are `junk.junk_pages` built from them. Nothing is downloaded and
no weights live in git: the model is a deterministic function of the Python version and the
settings below, written once to the cache (an `.npz`, no pickle) and loaded from there after.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import sys
from collections import defaultdict
from pathlib import Path

from instruct.quality.classifier import QualityClassifier, TrainConfig, train_classifier
from instruct.quality.features import HashedConfig

BUILTIN_PREFIX = "builtin:"
BUILTIN_MODELS = ("web",)
PAGE_WORDS = 250  # good pages are cut to about this many words, the length of a short web page
JUNK_PER_KIND = 1500
FEATURES = HashedConfig(n_features=2 ** 18)  # 1 MB of weights; word 1-2 grams
SETTINGS = {"page_words": PAGE_WORDS, "junk_per_kind": JUNK_PER_KIND, "features": dataclasses.asdict(FEATURES),
            "c": 4.0, "chrome_share": 0.5, "format": 2}  # all of it goes into the cache key


def python_doc_pages() -> list[str]:
    """Stdlib docstrings joined per module, and pydoc topics, cut into pages of ~PAGE_WORDS words."""
    from pydoc_data.topics import topics

    from instruct.corpus import stdlib_docstrings

    per_module: dict[str, list[str]] = defaultdict(list)
    for name, doc in stdlib_docstrings():
        per_module[name.split(".")[0]].append(doc)
    texts = ["\n\n".join(docs) for _, docs in sorted(per_module.items())]
    texts += [re.sub(r"(?<=\S)\n(?=\S)", " ", text) for _, text in sorted(topics.items())]
    pages = []
    for text in texts:
        page: list[str] = []
        for paragraph in text.split("\n"):
            page.append(paragraph)
            if sum(len(p.split()) for p in page) >= PAGE_WORDS:
                pages.append("\n".join(page).strip())
                page = []
        if sum(len(p.split()) for p in page) >= 40:
            pages.append("\n".join(page).strip())
    return pages


def model_path(name: str) -> Path:
    from instruct.models import cache_dir

    key = hashlib.sha256(json.dumps([name, sys.version, SETTINGS], sort_keys=True).encode()).hexdigest()[:12]
    return cache_dir() / "models" / f"quality-{name}-{key}.npz"


def builtin_classifier(name: str) -> QualityClassifier:
    """The cached built-in model `name`, trained and saved atomically on first use (seconds)."""
    from instruct.config import ConfigError
    from instruct.quality.junk import junk_pages, with_chrome

    if name not in BUILTIN_MODELS:
        raise ConfigError(f"unknown built-in classifier {BUILTIN_PREFIX}{name}; known: "
                          + ", ".join(BUILTIN_PREFIX + m for m in BUILTIN_MODELS))
    path = model_path(name)
    if path.is_file():
        return QualityClassifier.load(path)
    pages = python_doc_pages()
    good = with_chrome(pages, SETTINGS["chrome_share"])
    bad = [text for _, text in junk_pages(pages, JUNK_PER_KIND)]
    config = TrainConfig(hashed=FEATURES, holdout=0.1, c=SETTINGS["c"])
    result = train_classifier(good + bad, [1] * len(good) + [0] * len(bad), config)
    path.parent.mkdir(parents=True, exist_ok=True)
    result.classifier.save(path)
    return result.classifier
