"""`instruct export SHARDS_DIR --format alpaca|sharegpt|openai|trl --output FILE`: EXAMPLE shards -> chat
JSONL, PREFERENCE shards -> TRL's conversational prompt/chosen/rejected JSONL (which `read.format:
preference` and `instruct tune` read back).

Conversations a format cannot hold (Alpaca holds one exchange, so few-shot turns do not fit)
are skipped and counted per reason on stderr, never dropped silently. Written atomically;
FILE ending in .gz is gzip-compressed.
"""
from __future__ import annotations

import gzip
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal

import click

from instruct.empty import refuse_empty
from instruct.errors import user_errors
from instruct.io.shards import atomic_path, iter_batches, shard_paths
from instruct.preferences import to_trl
from instruct.schema import SchemaError, schema_kind, to_alpaca, to_openai, to_sharegpt

CONVERTERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "alpaca": to_alpaca, "sharegpt": to_sharegpt, "openai": to_openai, "trl": to_trl}
KIND = {"alpaca": "EXAMPLE", "sharegpt": "EXAMPLE", "openai": "EXAMPLE", "trl": "PREFERENCE"}  # rows each format holds


def export(shards: str | Path, format_name: str, output: str | Path) -> tuple[int, Counter]:
    """Write every example of `shards` (a build folder or a folder of .arrow files); returns (written, skipped)."""
    convert = CONVERTERS[format_name]
    paths = shard_paths(shards)
    if not paths:
        raise FileNotFoundError(f"{shards}: no .arrow shards found")
    written, skipped = 0, Counter()
    with atomic_path(output) as tmp:
        opener = gzip.open if str(output).endswith(".gz") else open
        with opener(tmp, "wt", encoding="utf-8") as sink:
            for path in paths:
                for batch in iter_batches(path):
                    kind = schema_kind(batch.schema)
                    if kind != KIND[format_name]:
                        formats = "trl" if kind == "PREFERENCE" else "alpaca, sharegpt or openai"
                        raise SchemaError(f"{path}: holds {kind} rows, which --format {format_name} cannot hold; "
                                          f"use --format {formats}" if kind != "DOCUMENT" else
                                          f"{path}: holds DOCUMENT rows; export takes EXAMPLE or PREFERENCE shards "
                                          "(the output of a template, synth or mix run)")
                    for example in batch.to_pylist():
                        try:
                            record = convert(example)
                        except SchemaError as error:
                            skipped[str(error).split(" has ", 1)[-1]] += 1
                            continue
                        sink.write(json.dumps(record, ensure_ascii=False) + "\n")
                        written += 1
    return written, skipped


@dataclass
class ExportConfig:
    """What `instruct export` flags and `key=value` overrides set."""

    input: str  # a build folder or a folder of .arrow shards
    format: Literal["alpaca", "openai", "sharegpt", "trl"]
    output: str  # JSONL file (.gz: gzip)
    allow_empty: bool = False


@click.command("export")
@click.argument("args", nargs=-1, metavar="[SHARDS_DIR] [KEY=VALUE]...")
@click.option("--input", "input_dir", type=click.Path(exists=True, file_okay=False),
              help="The shards folder (= the SHARDS_DIR argument; = input).")
@click.option("--format", "format_name", type=click.Choice(sorted(CONVERTERS)),
              help="alpaca (instruction/input/output, earlier turns as history), sharegpt (conversations), "
                   "openai (messages); trl (prompt/chosen/rejected) for PREFERENCE shards.")
@click.option("--output", type=click.Path(dir_okay=False), help="JSONL file to write (.gz ok).")
@click.option("--allow-empty", is_flag=True, default=None, help="Exit 0 even when no record could be written.")
def export_command(args: tuple[str, ...], input_dir: str | None, format_name: str | None, output: str | None,
                   allow_empty: bool | None) -> None:
    """Export EXAMPLE shards to Alpaca, ShareGPT or OpenAI chat JSONL, PREFERENCE shards to TRL JSONL."""
    from instruct.overrides import config_from, split_args

    with user_errors():
        positional, overrides = split_args(args)
        if positional and input_dir and positional != input_dir:
            raise click.UsageError(f"two inputs given: {positional} and --input {input_dir}")
        if positional and not Path(positional).is_dir():
            raise click.BadParameter(f"{positional}: no such folder", param_hint="SHARDS_DIR")
        config = config_from(ExportConfig, overrides, {"input": input_dir or positional, "format": format_name,
                                                       "output": output, "allow_empty": allow_empty}, "export")
        written, skipped = export(config.input, config.format, config.output)
    for reason, count in skipped.most_common():
        click.echo(f"skipped {count:,}: {reason}", err=True)
    click.echo(f"wrote {written:,} {config.format} records -> {config.output}")
    refuse_empty("export", written, skipped, config.allow_empty, where=config.input,
                 fix="--format sharegpt or openai hold any conversation" if skipped else "export a non-empty build")
