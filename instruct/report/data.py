"""What the report reads from a build's folder beyond the manifest: rejected samples, dedup clusters, languages.

Each reader is bounded (a few samples per reason, the first rows of meta), so the report of a
large build costs seconds, not a second pass over the data.
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from instruct.io.shards import iter_batches, read_table, shard_paths

SAMPLE_CHARS = 400
META_ROWS = 20_000  # rows per side read for the language distribution


def rejected_samples(output: Path, per_reason: int = 3) -> dict[tuple[str, str], list[dict[str, str]]]:
    """Up to `per_reason` dropped records per (step, reason), their text cut to SAMPLE_CHARS."""
    samples: dict[tuple[str, str], list[dict[str, str]]] = {}
    for path in sorted((output / "rejected").glob("*.arrow")):
        for batch in iter_batches(path):
            columns = batch.to_pydict()
            for i, reason in enumerate(columns["reason"]):
                bucket = samples.setdefault((columns["step"][i], reason), [])
                if len(bucket) < per_reason:
                    text = columns["text"][i] or columns["record"][i] or ""
                    bucket.append({"where": columns["where"][i] or columns["id"][i] or "",
                                   "text": text[:SAMPLE_CHARS] + ("…" if len(text) > SAMPLE_CHARS else "")})
    return samples


def clusters(paths: list[Path], largest: int = 10) -> dict[str, Any]:
    """Cluster-size histogram (size -> clusters) and the largest clusters of a dedup side table (whole or in parts)."""
    table = pa.concat_tables([read_table(p) for p in paths])
    kept = table.filter(table.column("kept"))
    sizes = Counter(kept.column("size").to_pylist())
    top = sorted(zip(kept.column("size").to_pylist(), kept.column("cluster").to_pylist()), key=lambda t: (-t[0], t[1]))
    biggest = []
    for size, cluster in top[:largest]:
        members = table.filter(pc.equal(table.column("cluster"), cluster)).column("id").to_pylist()
        biggest.append({"cluster": cluster, "size": size, "members": members[:5]})
    return {"sizes": dict(sorted(sizes.items())), "largest": biggest}


def languages(output: Path) -> dict[str, Counter]:
    """meta.language labels of kept rows (after) and of kept + dropped labelled rows (before)."""
    after = _labels(shard_paths(output))
    dropped = _labels(sorted((output / "rejected").glob("s*.arrow")))
    return {"before": after + dropped, "after": after} if after or dropped else {}


def _labels(paths: list[Path]) -> Counter:
    labels: Counter = Counter()
    seen = 0
    for path in paths:
        for batch in iter_batches(path):
            if "meta" not in batch.schema.names:
                return labels
            for meta in batch.column("meta").to_pylist():
                label = (json.loads(meta) if meta else {}).get("language")
                if isinstance(label, dict) and label.get("label"):
                    labels[label["label"]] += 1
                seen += 1
                if seen >= META_ROWS:
                    return labels
    return labels
