"""A real labeled dataset that every Python installation carries: Unicode character names
and their general category (Letter, Mark, Number, Punctuation, Symbol), from `unicodedata`.

Writes balanced train/validation/test JSONL files (`id`, `name`, `label`) for the end-to-end
example and the demo; labels follow `LABELS` order. Seeded, so every machine builds the same
splits (for one Unicode version). `python -m instruct.labeled_samples --output DIR`.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import unicodedata
from pathlib import Path
from typing import Sequence

from instruct.io.shards import atomic_path

LABELS = ["Letter", "Mark", "Number", "Punctuation", "Symbol"]
SPLITS = {"train": 300, "validation": 60, "test": 120}  # per label
SKIP_PREFIXES = ("CJK", "HANGUL SYLLABLE", "TANGUT", "YI SYLLABLE", "KHITAN", "NUSHU", "EGYPTIAN",
                 "CUNEIFORM", "LINEAR B", "ANATOLIAN", "BAMUM", "<")  # numbered names carry no signal


def characters_by_label() -> dict[str, list[tuple[str, str]]]:
    by_label: dict[str, list[tuple[str, str]]] = {label: [] for label in LABELS}
    for code_point in range(sys.maxunicode + 1):
        char = chr(code_point)
        name = unicodedata.name(char, "")
        major = unicodedata.category(char)[0]
        label = next((label for label in LABELS if label[0] == major), None)
        if name and label and not name.startswith(SKIP_PREFIXES):
            by_label[label].append((name, f"U+{code_point:04X}"))
    return by_label


def write_unicode_category(output: str | Path, seed: int = 0, splits: dict[str, int] | None = None) -> dict[str, Path]:
    """Write the splits (rows per label each) as JSONL files in `output`; returns split -> path."""
    splits = splits or SPLITS
    rng = random.Random(seed)
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    pools = {label: rng.sample(chars, sum(splits.values())) for label, chars in characters_by_label().items()}
    paths, offset = {}, 0
    for split, per_label in splits.items():
        rows = [{"id": code, "name": name, "label": LABELS.index(label)}
                for label in LABELS for name, code in pools[label][offset:offset + per_label]]
        rng.shuffle(rows)
        paths[split] = output / f"{split}.jsonl"
        with atomic_path(paths[split]) as tmp:
            tmp.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
        offset += per_label
    return paths


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="data/generated/unicode_category")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for split, path in write_unicode_category(args.output, args.seed).items():
        print(f"{split}: {path}")


if __name__ == "__main__":
    main()
