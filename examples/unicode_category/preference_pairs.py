#!/usr/bin/env python
"""Unicode general-category pairs: chosen = the true category, rejected = a random wrong one (real unicodedata)."""
import json
import random
import sys
from pathlib import Path

from instruct.labeled_samples import LABELS, write_unicode_category

QUESTION = ("Which Unicode general category (Letter, Mark, Number, Punctuation or Symbol) does the character "
            "named {name} belong to? Answer with one word.")
out = Path(sys.argv[1])
paths = write_unicode_category(out / "raw")
rng = random.Random(0)
for split in ("train", "test"):
    rows = [json.loads(line) for line in paths[split].read_text().splitlines()]
    with open(out / f"{split}_pairs.jsonl", "w") as f:
        for r in rows:
            wrong = rng.choice([label for i, label in enumerate(LABELS) if i != r["label"]])
            f.write(json.dumps({"id": r["id"], "prompt": QUESTION.format(name=r["name"]),
                                "chosen": LABELS[r["label"]], "rejected": wrong}) + "\n")
