"""The three Arrow schemas every stage speaks, and converters to the chat formats users bring.

DOCUMENT rows are raw text (web pages, books, code files); EXAMPLE rows are conversations;
PREFERENCE rows are a prompt with a chosen and a rejected answer (converters in
`instruct.preferences`). `meta` is a JSON string so that steps can add scores without
changing the schema.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any, Iterable, Mapping

import pyarrow as pa

DOCUMENT_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("text", pa.string()),
        pa.field("source", pa.string()),
        pa.field("url_or_path", pa.string()),
        pa.field("meta", pa.string()),
    ]
)

MESSAGE_TYPE = pa.struct([pa.field("role", pa.string()), pa.field("content", pa.string())])

EXAMPLE_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("messages", pa.list_(MESSAGE_TYPE)),
        pa.field("source", pa.string()),
        pa.field("meta", pa.string()),
    ]
)

PREFERENCE_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("prompt", pa.list_(MESSAGE_TYPE)),  # the conversation so far, ending with a user turn
        pa.field("chosen", pa.list_(MESSAGE_TYPE)),  # the preferred continuation (assistant turns)
        pa.field("rejected", pa.list_(MESSAGE_TYPE)),  # the dispreferred continuation
        pa.field("source", pa.string()),
        pa.field("meta", pa.string()),  # scores, ranks, judge, rationale
    ]
)

# `instruct mix` of DOCUMENT and EXAMPLE sources: a row with `messages` is an example (trained as
# SFT), a row with `text` and no messages a document (trained as continued pre-training).
MIXED_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("messages", pa.list_(MESSAGE_TYPE)),
        pa.field("text", pa.string()),
        pa.field("source", pa.string()),
        pa.field("url_or_path", pa.string()),
        pa.field("meta", pa.string()),
    ]
)

ROLES = ("system", "user", "assistant")
MESSAGE_COLUMNS = ("messages", "prompt", "chosen", "rejected")  # the list<{role, content}> columns


class SchemaError(ValueError):
    """A record that cannot be mapped onto DOCUMENT or EXAMPLE."""


def content_id(*parts: str) -> str:
    """A stable id derived from content, for inputs that carry none."""
    digest = hashlib.blake2b(digest_size=12)
    for part in parts:
        digest.update(part.encode("utf-8", "surrogatepass"))
        digest.update(b"\x00")
    return digest.hexdigest()


def dump_meta(meta: Mapping[str, Any] | None) -> str:
    return json.dumps(dict(meta or {}), ensure_ascii=False, sort_keys=True, default=str)


def load_meta(meta: str | None) -> dict[str, Any]:
    return json.loads(meta) if meta else {}


def documents_table(rows: Iterable[Mapping[str, Any]]) -> pa.Table:
    """Build a DOCUMENT table from dicts; `meta` may be a dict or a JSON string."""
    return _table(rows, DOCUMENT_SCHEMA)


def examples_table(rows: Iterable[Mapping[str, Any]]) -> pa.Table:
    """Build an EXAMPLE table from dicts with `messages` as a list of {role, content}."""
    return _table(rows, EXAMPLE_SCHEMA)


def preferences_table(rows: Iterable[Mapping[str, Any]]) -> pa.Table:
    """Build a PREFERENCE table from dicts with `prompt`, `chosen`, `rejected` as lists of {role, content}."""
    return _table(rows, PREFERENCE_SCHEMA)


def _table(rows: Iterable[Mapping[str, Any]], schema: pa.Schema) -> pa.Table:
    """Columns of `schema` from dicts: `meta` dicts dumped to JSON, message lists cut to {role, content}."""
    columns: dict[str, list] = {name: [] for name in schema.names}
    for row in rows:
        for name in schema.names:
            value = row.get(name)
            if name == "meta" and not isinstance(value, str):
                value = dump_meta(value)
            elif schema.field(name).type == pa.list_(MESSAGE_TYPE):
                value = [{"role": m["role"], "content": m["content"]} for m in value]
            columns[name].append(value)
    return pa.Table.from_pydict(columns, schema=schema)


def is_example_schema(schema: pa.Schema) -> bool:
    return "messages" in schema.names and "text" not in schema.names


def is_mixed_schema(schema: pa.Schema) -> bool:
    return {"messages", "text"} <= set(schema.names)


def is_preference_schema(schema: pa.Schema) -> bool:
    return {"prompt", "chosen", "rejected"} <= set(schema.names)


def schema_kind(schema: pa.Schema) -> str:
    """'PREFERENCE', 'EXAMPLE', 'MIXED' (examples and documents) or 'DOCUMENT': which data model a table holds."""
    if is_preference_schema(schema):
        return "PREFERENCE"
    if is_mixed_schema(schema):
        return "MIXED"
    return "EXAMPLE" if is_example_schema(schema) else "DOCUMENT"


def to_mixed(table: pa.Table) -> pa.Table:
    """A DOCUMENT, EXAMPLE or MIXED table in MIXED_SCHEMA (the columns a kind lacks are null)."""
    columns = [table.column(f.name).cast(f.type) if f.name in table.schema.names else pa.nulls(table.num_rows, f.type)
               for f in MIXED_SCHEMA]
    return pa.Table.from_arrays(columns, schema=MIXED_SCHEMA)


def validate_messages(messages: list[Mapping[str, str]]) -> None:
    """Raise SchemaError unless this is a usable conversation ending with an assistant turn."""
    if not messages:
        raise SchemaError("conversation has no messages")
    for position, message in enumerate(messages):
        if message.get("role") not in ROLES:
            raise SchemaError(f"message {position} has role {message.get('role')!r}, expected one of {ROLES}")
        if not isinstance(message.get("content"), str):
            raise SchemaError(f"message {position} has no string content")
    if messages[-1]["role"] != "assistant":
        raise SchemaError("conversation does not end with an assistant message")


# --- converters -------------------------------------------------------------------------------

def from_alpaca(record: Mapping[str, Any], source: str = "alpaca") -> dict[str, Any]:
    """Alpaca {instruction, input, output[, system, history]} -> EXAMPLE dict (input appended to the prompt).

    `history` is the LLaMA-Factory convention for earlier turns: a list of [prompt, answer] pairs.
    """
    try:
        instruction, output = record["instruction"], record["output"]
    except KeyError as missing:
        raise SchemaError(f"alpaca record has no {missing.args[0]!r} field") from None
    prompt = instruction if not record.get("input") else f"{instruction}\n\n{record['input']}"
    history = record.get("history") or []
    if not isinstance(history, list) or not all(isinstance(p, (list, tuple)) and len(p) == 2 for p in history):
        raise SchemaError("alpaca record's 'history' must be a list of [prompt, answer] pairs")
    messages = [{"role": role, "content": text} for pair in history
                for role, text in zip(("user", "assistant"), pair)]
    messages += [{"role": "user", "content": prompt}, {"role": "assistant", "content": output}]
    if record.get("system"):
        messages.insert(0, {"role": "system", "content": record["system"]})
    return _example(record, messages, source)


def to_alpaca(example: Mapping[str, Any]) -> dict[str, Any]:
    """EXAMPLE -> Alpaca: the last exchange, earlier ones (few-shot turns, dialogues) as `history` pairs."""
    turns = [m for m in example["messages"] if m["role"] != "system"]
    roles = [m["role"] for m in turns]
    if not turns or len(turns) % 2 or roles != ["user", "assistant"] * (len(turns) // 2):
        raise SchemaError(f"example {example.get('id')} has turns that do not alternate user/assistant; "
                          "Alpaca holds user -> assistant exchanges")
    system = next((m["content"] for m in example["messages"] if m["role"] == "system"), None)
    record: dict[str, Any] = {"instruction": turns[-2]["content"], "input": "", "output": turns[-1]["content"]}
    if system:
        record["system"] = system
    if len(turns) > 2:
        record["history"] = [[turns[i]["content"], turns[i + 1]["content"]] for i in range(0, len(turns) - 2, 2)]
    return record


_SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                   "system": "system", "chatgpt": "assistant", "bard": "assistant"}
_TO_SHAREGPT = {"user": "human", "assistant": "gpt", "system": "system"}


def from_sharegpt(record: Mapping[str, Any], source: str = "sharegpt") -> dict[str, Any]:
    """ShareGPT {conversations: [{from, value}]} -> EXAMPLE dict."""
    turns = record.get("conversations")
    if not isinstance(turns, list):
        raise SchemaError("sharegpt record has no 'conversations' list")
    messages = []
    for turn in turns:
        role = _SHAREGPT_ROLES.get(str(turn.get("from", "")).lower())
        if role is None:
            raise SchemaError(f"sharegpt turn has unknown speaker {turn.get('from')!r}")
        messages.append({"role": role, "content": turn.get("value", "")})
    return _example(record, messages, source)


def to_sharegpt(example: Mapping[str, Any]) -> dict[str, Any]:
    return {"id": example["id"],
            "conversations": [{"from": _TO_SHAREGPT[m["role"]], "value": m["content"]} for m in example["messages"]]}


def from_openai(record: Mapping[str, Any], source: str = "openai") -> dict[str, Any]:
    """OpenAI chat {messages: [{role, content}]} -> EXAMPLE dict."""
    messages = record.get("messages")
    if not isinstance(messages, list):
        raise SchemaError("openai record has no 'messages' list")
    return _example(record, [{"role": m.get("role"), "content": m.get("content")} for m in messages], source)


def to_openai(example: Mapping[str, Any]) -> dict[str, Any]:
    return {"messages": [{"role": m["role"], "content": m["content"]} for m in example["messages"]]}


def detect_chat_format(record: Mapping[str, Any]) -> str:
    """Name the chat format of one record: 'example', 'openai', 'sharegpt' or 'alpaca'."""
    if "messages" in record:
        return "example" if "meta" in record and "source" in record else "openai"
    if "conversations" in record:
        return "sharegpt"
    if "instruction" in record and "output" in record:
        return "alpaca"
    raise SchemaError(f"record with fields {sorted(record)} is not Alpaca, ShareGPT or OpenAI chat")


def to_example(record: Mapping[str, Any], source: str | None = None) -> dict[str, Any]:
    """Any supported chat record -> a validated EXAMPLE dict."""
    kind = detect_chat_format(record)
    if kind == "example":
        example = dict(record)
    else:
        converter = {"openai": from_openai, "sharegpt": from_sharegpt, "alpaca": from_alpaca}[kind]
        example = converter(record, source or kind)
    validate_messages(example["messages"])
    return example


def _example(record: Mapping[str, Any], messages: list[dict[str, str]], source: str) -> dict[str, Any]:
    validate_messages(messages)
    record_id = record.get("id")
    if record_id is None:
        record_id = content_id(*(m["role"] + ":" + m["content"] for m in messages))
    return {"id": str(record_id), "messages": messages, "source": source, "meta": dump_meta({})}
