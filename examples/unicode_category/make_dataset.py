"""A real labeled dataset that every Python installation carries: Unicode character names
and their general category (Letter, Mark, Number, Punctuation, Symbol), from `unicodedata`.

Writes balanced train/validation/test JSONL files (`name`, `label`, `char`, `id`) for the
end-to-end example; labels follow `LABELS` order. Seeded, so every machine builds the same splits.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import unicodedata
from pathlib import Path

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="data/generated/unicode_category")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    pools = {label: rng.sample(chars, sum(SPLITS.values())) for label, chars in characters_by_label().items()}
    offset = 0
    for split, per_label in SPLITS.items():
        rows = [{"id": code, "name": name, "label": LABELS.index(label), "code_point": code}
                for label in LABELS for name, code in pools[label][offset:offset + per_label]]
        rng.shuffle(rows)
        with open(output / f"{split}.jsonl", "w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(row) + "\n" for row in rows)
        print(f"{split}: {len(rows)} rows -> {output / f'{split}.jsonl'}")
        offset += per_label


if __name__ == "__main__":
    main()
