#!/usr/bin/env python
"""Unicode general-category preference pairs from Python's own unicodedata: the true category as chosen,
a random wrong one as rejected, for the train and test splits of `instruct.labeled_samples`.

    python examples/unicode_category/preference_pairs.py OUT_DIR   # writes OUT_DIR/{train,test}_pairs.jsonl
"""
from __future__ import annotations

import json
import random
import sys
from pathlib import Path

from instruct.labeled_samples import LABELS, write_unicode_category

QUESTION = ("Which Unicode general category (Letter, Mark, Number, Punctuation or Symbol) does the character "
            "named {name} belong to? Answer with one word.")


def pair(row: dict, rng: random.Random) -> dict:
    wrong = rng.choice([label for index, label in enumerate(LABELS) if index != row["label"]])
    return {"id": row["id"], "prompt": QUESTION.format(name=row["name"]), "chosen": LABELS[row["label"]],
            "rejected": wrong}


def main(out: Path) -> None:
    paths = write_unicode_category(out / "raw")
    rng = random.Random(0)
    for split in ("train", "test"):
        rows = [json.loads(line) for line in paths[split].read_text().splitlines()]
        (out / f"{split}_pairs.jsonl").write_text("".join(json.dumps(pair(r, rng)) + "\n" for r in rows))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
