"""What synth methods read, through the build readers: DOCUMENT rows (back-translation) and prompts
(answer, preference, evol-instruct).

A path is a shards folder (`DIR` or `DIR/shards`), an `.arrow` / `.parquet` file or a JSONL file
(.gz/.zst). Prompts come from EXAMPLE shards or chat JSONL (the last assistant turn dropped), from
PREFERENCE shards (their prompt), or from JSONL records with a `prompt` string. Rows of the wrong kind
(DOCUMENT shards where prompts are needed) are a one-line error naming the path, never a KeyError.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Iterator

from instruct.io.readers import InputError, ReadConfig, open_reader
from instruct.io.shards import shard_paths
from instruct.schema import SchemaError, content_id, detect_chat_format, schema_kind

Messages = list[dict[str, str]]


def _read_config(path: str, text_field: str) -> ReadConfig:
    """The reader for one synth input path, chosen by what the path is."""
    target = Path(path)
    if target.is_dir():
        shards = shard_paths(target)
        if not shards:
            raise InputError(f"{path}: no .arrow shards in this folder")
        return ReadConfig(format="arrow", paths=[str(p) for p in shards], text_field=text_field)
    if not target.exists():
        raise InputError(f"{path}: no such file or folder")
    suffix = target.suffix.lower()
    kind = {".arrow": "arrow", ".parquet": "parquet"}.get(suffix, "jsonl")
    return ReadConfig(format=kind, paths=[path], text_field=text_field)


def _rows(path: str, text_field: str) -> tuple[str, Iterator[dict[str, Any]]]:
    """(schema kind, rows) of one input path through the build readers; a bad record stops the run (strict)."""
    reader = open_reader(_read_config(path, text_field), strict=True)

    def rows() -> Iterator[dict[str, Any]]:
        for unit in reader.units():
            for batch in reader.read_unit(unit):
                yield from batch.table.to_pylist()

    return schema_kind(reader.schema), rows()


def load_documents(paths: list[str], text_field: str = "text") -> list[dict[str, Any]]:
    """Every DOCUMENT row at `paths`; EXAMPLE or PREFERENCE shards are an error naming the path."""
    documents = []
    for path in paths:
        kind, rows = _rows(path, text_field)
        if kind != "DOCUMENT":
            raise InputError(f"{path}: holds {kind} rows; back-translation needs DOCUMENT rows "
                             "(the output of `instruct build` on a corpus, or JSONL with a 'text' field)")
        documents.extend(rows)
    if not documents:
        raise InputError(f"{', '.join(paths)}: no documents")
    return documents


def load_prompts(paths: list[str], text_field: str = "prompt") -> tuple[list[dict[str, Any]], Counter]:
    """Prompts as {id, prompt: messages ending with a user turn, reference: the dropped answer or None},
    and the rows that hold no usable prompt, counted by reason."""
    prompts: list[dict[str, Any]] = []
    skipped: Counter = Counter()
    for path in paths:
        if _is_chat_jsonl(path):
            from instruct.io.examples import load_examples

            rows, kind = load_examples(path), "EXAMPLE"
        else:
            kind, rows = _rows(path, text_field)
        if kind == "DOCUMENT" and not _is_jsonl(path):
            raise InputError(f"{path}: holds DOCUMENT rows (no 'messages'), not instructions; give EXAMPLE shards "
                             f"or JSONL with a {text_field!r} field, or use --method backtranslate --documents")
        for row in rows:
            prompt = _prompt_of(row, kind)
            if prompt is None:
                skipped["no_user_turn"] += 1
                continue
            prompts.append(prompt)
    if not prompts:
        raise InputError(f"{', '.join(paths)}: no prompts (skipped: {dict(skipped) or 'none'})")
    return prompts, skipped


def _prompt_of(row: dict[str, Any], kind: str) -> dict[str, Any] | None:
    if kind == "PREFERENCE":
        messages, reference = row["prompt"], None
    elif kind == "EXAMPLE":
        messages = list(row["messages"])
        reference = messages.pop()["content"] if messages and messages[-1]["role"] == "assistant" else None
    else:  # a JSONL record read as a document whose text is the prompt
        messages, reference = [{"role": "user", "content": row["text"]}], None
    messages = [{"role": m["role"], "content": m["content"]} for m in messages]
    if not messages or messages[-1]["role"] != "user" or not (messages[-1]["content"] or "").strip():
        return None
    row_id = row.get("id") or content_id(*(m["role"] + ":" + m["content"] for m in messages))
    return {"id": str(row_id), "prompt": messages, "reference": reference}


def _is_jsonl(path: str) -> bool:
    return Path(path).is_file() and Path(path).suffix.lower() not in (".arrow", ".parquet")


def _is_chat_jsonl(path: str) -> bool:
    """Whether the first record of a JSONL file is a chat record (Alpaca, ShareGPT, OpenAI, EXAMPLE)."""
    if not _is_jsonl(path):
        return False
    from instruct.io.records import json_objects

    try:
        _, record = next(json_objects(path))
        detect_chat_format(record)
    except (StopIteration, InputError, SchemaError, TypeError):
        return False
    return True
