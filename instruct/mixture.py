"""Mixtures: several EXAMPLE and DOCUMENT sources (templated datasets, synth outputs, curated corpora) in set
proportions, e.g. 10 % pre-training text replayed during SFT to limit forgetting.

    instruct mix pipelines/mixture.yaml [--output DIR] [key=value ...]

    seed: 0
    total: 10000              # optional; default: the largest mix that meets the weights without repeats
    sources:
      - {name: sst, shards: out/sst, weight: 0.5}
      - {name: nli, recipe: labeled, weight: 0.3, cap: 2000}   # a file or a shipped recipe's name
      - {name: synth, shards: out/synth, weight: 0.1}
      - {name: web, shards: out/web, weight: 0.1}     # DOCUMENT shards: trained as continued pre-training
    write: {output: out/mix}

A source is existing EXAMPLE shards, or a build recipe (a path, a shipped recipe's name or an inline mapping) that is
built first into OUTPUT/sources/NAME. Without weights, sources mix in proportion to their
(capped) sizes, as T5/Flan do. A source that hits its cap (or its size, unless `repeat`) keeps
that many rows and the rest of the total is shared among the others by weight. Which rows are
taken depends only on (seed, source, id), so the mix is identical on every machine; the
requested and realised proportions are written to OUTPUT/manifest.json. Proportions count rows
(a document is usually many more tokens than an example). With any DOCUMENT source the mix is
written in the MIXED schema (`instruct.schema.MIXED_SCHEMA`: examples have `messages`, documents
`text`); `instruct tune` trains each row with its own objective and reports loss per source.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import numpy as np
import pyarrow as pa

from instruct.config import ConfigError, from_dict, load_yaml, to_dict
from instruct.io.shards import ShardWriter, read_shards, shard_paths, write_json
from instruct.overrides import apply as apply_overrides
from instruct.pipeline.step import merge_meta, replace_column
from instruct.schema import schema_kind, to_mixed
from instruct.templates.render import stable_seed


@dataclass
class MixSource:
    name: str
    shards: str = ""  # EXAMPLE or DOCUMENT shards: a build output folder or a folder of .arrow files
    recipe: Any = None  # or a build recipe (path or mapping), built first into OUTPUT/sources/NAME
    weight: float | None = None  # share of the mix (normalised); default: proportional to capped size
    cap: int | None = None  # at most this many rows from this source


@dataclass
class MixWrite:
    output: str = "out/mix"
    shard_size: int = 50_000


@dataclass
class MixConfig:
    sources: list[MixSource]
    total: int | None = None  # rows in the mix; default: the most that meets the weights without repeats
    seed: int = 0
    repeat: bool = False  # let a small source repeat (upsample) to reach its share
    workers: int = 1  # for sources built from recipes
    write: MixWrite = field(default_factory=MixWrite)


def load_mix_config(path: str | Path, overrides: list[str] = (), flags: dict[str, Any] | None = None) -> MixConfig:
    """The mixture recipe at `path` with `key=value` overrides and CLI flags (`write.output`) applied."""
    data = apply_overrides(load_yaml(path), list(overrides), flags)
    config = from_dict(MixConfig, data, where=str(path))
    names = [s.name for s in config.sources]
    if not names or len(set(names)) != len(names):
        raise ConfigError(f"{path}: sources need distinct names, got {names}")
    for source in config.sources:
        if bool(source.shards) == (source.recipe is not None):
            raise ConfigError(f"{path}: source {source.name!r} needs exactly one of 'shards' or 'recipe'")
    weights = [s.weight for s in config.sources]
    if any(w is None for w in weights) and any(w is not None for w in weights):
        raise ConfigError(f"{path}: give a weight to every source or to none")
    if any(w is not None and w <= 0 for w in weights):
        raise ConfigError(f"{path}: weights must be positive")
    return config


def quotas(available: list[int], weights: list[float] | None, caps: list[int | None], total: int | None,
           repeat: bool = False) -> list[int]:
    """Rows to take per source: weights honoured exactly where limits allow, the rest shared by weight."""
    limits = [cap if cap is not None else (math.inf if repeat else n) for n, cap in zip(available, caps)]
    if weights is None:
        weights = [min(n, cap) if cap is not None else n for n, cap in zip(available, caps)]
    share = np.asarray(weights, dtype=float) / sum(weights)
    if total is None:
        finite = [limit / p for limit, p in zip(limits, share) if math.isfinite(limit) and p > 0]
        if not finite:
            raise ConfigError("mixture: with repeat and no caps, give `total`")
        total = int(min(finite) + 1e-9)
    fixed: dict[int, int] = {}
    while True:  # water-filling: sources over their limit keep the limit, the rest share what remains
        active = [i for i in range(len(share)) if i not in fixed]
        remaining = total - sum(fixed.values())
        active_share = sum(share[i] for i in active)
        over = [i for i in active if active_share and remaining * share[i] / active_share > limits[i]]
        if not over:
            break
        for i in over:
            fixed[i] = int(limits[i])
    exact = {i: remaining * share[i] / active_share if active_share else 0.0 for i in active}
    counts = {i: int(math.floor(v)) for i, v in exact.items()}
    leftover = max(0, remaining - sum(counts.values()))
    for i in sorted(active, key=lambda i: (-(exact[i] - counts[i]), i))[:leftover]:  # largest remainder
        counts[i] += 1
    counts.update(fixed)
    return [counts[i] for i in range(len(share))]


def choose_rows(ids: list[str], quota: int, seed: int, name: str) -> list[tuple[int, int]]:
    """(row index, repeat number) pairs: whole passes when quota > rows, then the lowest-ranked rows."""
    if not ids or quota <= 0:
        return []
    passes, rest = divmod(quota, len(ids))
    chosen = [(i, r) for r in range(passes) for i in range(len(ids))]
    ranks = np.fromiter((stable_seed(seed, name, passes, row_id) for row_id in ids), dtype=np.uint64, count=len(ids))
    chosen += [(int(i), passes) for i in np.argsort(ranks, kind="stable")[:rest]]
    return chosen


def mix(config: MixConfig, show_progress: bool = True) -> dict[str, Any]:
    """Build the mix and its manifest; returns the manifest."""
    output = Path(config.write.output)
    started = time.perf_counter()
    tables = [_source_table(source, config, output, show_progress) for source in config.sources]
    available = [t.num_rows for t in tables]
    weights = None if config.sources[0].weight is None else [s.weight for s in config.sources]
    taken = quotas(available, weights, [s.cap for s in config.sources], config.total, config.repeat)
    parts = []
    for source, table, quota in zip(config.sources, tables, taken):
        parts.append(_take(table, choose_rows(table.column("id").to_pylist(), quota, config.seed, source.name),
                           source.name))
    kinds = {schema_kind(t.schema) for t in tables}
    kind = kinds.pop() if len(kinds) == 1 else "MIXED"
    if kind == "MIXED":
        parts = [to_mixed(p) for p in parts]
    mixed = pa.concat_tables([p for p in parts if p.num_rows], promote_options="permissive") if any(
        p.num_rows for p in parts) else None
    for old in shard_paths(output / "shards") if (output / "shards").is_dir() else []:
        old.unlink()
    written = 0
    if mixed is not None:
        order = np.argsort(np.fromiter((stable_seed(config.seed, "order", i) for i in mixed.column("id").to_pylist()),
                                       dtype=np.uint64, count=mixed.num_rows), kind="stable")
        writer = ShardWriter(output / "shards", "mix", config.write.shard_size)
        writer.write(mixed.take(pa.array(order)))
        writer.close()
        written = mixed.num_rows
    manifest = _manifest(config, available, taken, written, time.perf_counter() - started, kind)
    write_json(manifest, output / "manifest.json")
    return manifest


def _source_table(source: MixSource, config: MixConfig, output: Path, show_progress: bool) -> pa.Table:
    folder = source.shards
    if source.recipe is not None:
        from instruct.pipeline.recipe import load_recipe
        from instruct.pipeline.runner import build
        from instruct.resources.recipes import recipe_file

        folder = str(output / "sources" / source.name)
        recipe_path = recipe_file(source.recipe) if isinstance(source.recipe, str) else None
        data = source.recipe if isinstance(source.recipe, dict) else None
        recipe = load_recipe(recipe_path, [f"write.output={folder}", f"workers={config.workers}"], data=data)
        build(recipe, data, show_progress=show_progress)
    table = read_shards(folder)
    kind = schema_kind(table.schema)
    if kind not in ("EXAMPLE", "DOCUMENT", "MIXED"):
        raise ConfigError(f"mixture: source {source.name!r} ({folder}) holds {kind} rows; mixes take EXAMPLE "
                          "and DOCUMENT shards")
    return table


def _take(table: pa.Table, chosen: list[tuple[int, int]], name: str) -> pa.Table:
    if not chosen:
        return table.slice(0, 0)
    picked = table.take(pa.array([i for i, _ in chosen], pa.int64()))
    ids = [row_id if r == 0 else f"{row_id}#repeat{r}" for row_id, (_, r) in zip(picked.column("id").to_pylist(),
                                                                                  chosen)]
    metas = [merge_meta(meta, {"mixture": {"source": name, **({"repeat": r} if r else {})}})
             for meta, (_, r) in zip(picked.column("meta").to_pylist(), chosen)]
    return replace_column(replace_column(picked, "id", ids), "meta", metas)


def _manifest(config: MixConfig, available: list[int], taken: list[int], written: int, seconds: float,
              kind: str) -> dict:
    from instruct.provenance import package_versions

    weights = [s.weight for s in config.sources] if config.sources[0].weight is not None else [
        min(n, s.cap) if s.cap is not None else n for n, s in zip(available, config.sources)]
    total_weight = sum(weights)
    sources = [{"name": s.name, "path": s.shards or str(Path(config.write.output) / "sources" / s.name),
                "available": n, "cap": s.cap, "weight": s.weight, "requested_share": round(w / total_weight, 6),
                "taken": t, "realised_share": round(t / written, 6) if written else 0.0,
                "repeated_rows": max(0, t - n)}
               for s, n, w, t in zip(config.sources, available, weights, taken)]
    return {"kind": "mixture", "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "config": to_dict(config), "seed": config.seed, "total_requested": config.total, "written": written,
            "schema": kind, "sources": sources, "versions": package_versions(), "seconds": round(seconds, 3),
            "shards": [p.name for p in shard_paths(Path(config.write.output) / "shards")] if written else []}


@click.command("mix")
@click.argument("recipe", type=click.Path(dir_okay=False))
@click.argument("overrides", nargs=-1)
@click.option("--output", help="Output folder (DIR/shards, DIR/manifest.json).")
def mix_command(recipe: str, overrides: tuple[str, ...], output: str | None) -> None:
    """Mix EXAMPLE and DOCUMENT sources (shards or build recipes) by weight and cap, seeded; see pipelines/mixture.yaml."""
    from instruct.errors import user_errors

    with user_errors():
        config = load_mix_config(recipe, list(overrides), {"write.output": output})
        manifest = mix(config)
    for source in manifest["sources"]:
        click.echo(f"{source['name']:20} {source['taken']:>9,} of {source['available']:>9,}  "
                   f"share {source['realised_share']:.3f} (requested {source['requested_share']:.3f})")
    click.echo(f"wrote {manifest['written']:,} {manifest['schema']} rows -> {config.write.output}")
