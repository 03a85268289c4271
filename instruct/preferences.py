"""Preference records in the formats people have -> PREFERENCE rows (see `instruct.schema`).

One input record can give several pairs: UltraFeedback-style rated completions give every pair
whose score margin exceeds `min_margin` (ties are counted, not paired), and a K-way ranking
gives all C(K,2) pairs as InstructGPT trains its reward model. Formats, detected per record:

- `trl`: `{prompt, chosen, rejected}`, each a string or a list of messages (TRL's plain and
  conversational forms); without `prompt`, chosen and rejected are whole conversations whose
  shared prefix is the prompt (TRL's implicit prompt).
- `hh`: `{chosen, rejected}` full texts with "\\n\\nHuman:" / "\\n\\nAssistant:" turns (HH-RLHF).
- `ultrafeedback`: `{instruction | prompt, completions: [{response, overall_score | score | rating}]}`.
- `ranking`: `{prompt, ranking: [best, ..., worst]}` or `{prompt, responses: [...], ranks: [...]}`
  (rank 1 is best).
- `unpaired`: `{prompt, completion, label: bool}` (TRL's unpaired KTO format): one answer marked
  desirable or not, no pair; `to_unpaired` reads it, and only the KTO loss trains on it.
"""
from __future__ import annotations

import itertools
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from instruct.schema import ROLES, SchemaError, content_id, dump_meta

Messages = list[dict[str, str]]

_HH_TURN = re.compile(r"\n\n(Human|Assistant):")
_SCORE_KEYS = ("overall_score", "score", "rating")


@dataclass
class PairStats:
    """What converting records produced: pairs, and candidate pairs not made (ties) per reason."""

    pairs: int = 0
    skipped: Counter = field(default_factory=Counter)


def detect_preference_format(record: Mapping[str, Any]) -> str:
    """Name the preference format of one record: 'preference', 'trl', 'hh', 'ultrafeedback' or 'ranking'."""
    if {"prompt", "chosen", "rejected", "source", "meta"} <= set(record):
        return "preference"
    if {"prompt", "completion", "label"} <= set(record):
        return "unpaired"
    if "completions" in record:
        return "ultrafeedback"
    if "ranking" in record or ("responses" in record and "ranks" in record):
        return "ranking"
    if "chosen" in record and "rejected" in record:
        if "prompt" not in record and isinstance(record["chosen"], str) and _HH_TURN.search(record["chosen"]):
            return "hh"
        return "trl"
    raise SchemaError(f"record with fields {sorted(record)} is not a TRL, HH-RLHF, UltraFeedback or ranking record")


def to_preferences(record: Mapping[str, Any], source: str | None = None, min_margin: float = 0.0,
                   stats: PairStats | None = None) -> list[dict[str, Any]]:
    """Any supported preference record -> validated PREFERENCE dicts (one or more pairs)."""
    kind = detect_preference_format(record)
    if kind == "unpaired":
        raise SchemaError("an unpaired record (prompt, completion, label) has no pair: only method.loss=kto "
                          "trains on unpaired data, and a file holds one kind")
    if kind == "preference":
        pairs = [dict(record)]
    elif kind == "trl":
        pairs = [_from_trl(record, source or "trl")]
    elif kind == "hh":
        pairs = [_from_full_conversations(record, _hh_messages(record["chosen"]), _hh_messages(record["rejected"]),
                                          source or "hh")]
    elif kind == "ultrafeedback":
        pairs = _from_ratings(record, source or "ultrafeedback", min_margin, stats)
    else:
        pairs = _from_ranking(record, source or "ranking")
    for pair in pairs:
        validate_preference(pair)
    if stats is not None:
        stats.pairs += len(pairs)
    return pairs


def validate_preference(pair: Mapping[str, Any]) -> None:
    """Raise SchemaError unless the prompt ends with a user turn and both answers are assistant turns."""
    chosen, rejected = pair.get("chosen"), pair.get("rejected")
    _validate_turns(pair.get("prompt"), {"chosen": chosen, "rejected": rejected})
    if chosen == rejected:
        raise SchemaError("preference chosen and rejected are identical")


def _validate_turns(prompt: Messages | None, answers: Mapping[str, Messages | None]) -> None:
    """A prompt ending with a user turn, and each answer one or more assistant turns."""
    if not prompt:
        raise SchemaError("preference has an empty prompt")
    for name, messages in (("prompt", prompt), *answers.items()):
        for position, message in enumerate(messages or []):
            if message.get("role") not in ROLES or not isinstance(message.get("content"), str):
                raise SchemaError(f"{name} message {position} is not a {{role, content}} message with a known role")
    if prompt[-1]["role"] != "user":
        raise SchemaError("preference prompt does not end with a user message")
    for name, messages in answers.items():
        if not messages or any(m["role"] != "assistant" for m in messages):
            raise SchemaError(f"preference {name} must be one or more assistant messages")


def to_unpaired(record: Mapping[str, Any]) -> dict[str, Any]:
    """An unpaired KTO record -> {id, prompt, completion, label}, validated as a pair's prompt and answer are."""
    if detect_preference_format(record) != "unpaired":
        raise SchemaError(f"record with fields {sorted(record)} is not an unpaired (prompt, completion, label) "
                          "record; a file holds one kind")
    if not isinstance(record["label"], bool):
        raise SchemaError(f"label must be true or false, got {record['label']!r}")
    prompt = _as_messages(record["prompt"], "user", "prompt")
    completion = _as_messages(record["completion"], "assistant", "completion")
    _validate_turns(prompt, {"completion": completion})
    base = record.get("id")
    if base is None:
        base = content_id(*(m["role"] + ":" + str(m["content"]) for m in prompt + completion), str(record["label"]))
    return {"id": str(base), "prompt": prompt, "completion": completion, "label": record["label"]}


def to_trl(pair: Mapping[str, Any]) -> dict[str, Any]:
    """PREFERENCE -> TRL's conversational prompt/chosen/rejected record."""
    strip = lambda messages: [{"role": m["role"], "content": m["content"]} for m in messages]  # noqa: E731
    return {"prompt": strip(pair["prompt"]), "chosen": strip(pair["chosen"]), "rejected": strip(pair["rejected"])}


# --- formats ----------------------------------------------------------------------------------

def _as_messages(value: Any, role: str, name: str) -> Messages:
    if isinstance(value, str):
        return [{"role": role, "content": value}]
    if isinstance(value, list) and all(isinstance(m, Mapping) for m in value):
        return [{"role": m.get("role"), "content": m.get("content")} for m in value]
    raise SchemaError(f"{name} must be a string or a list of messages")


def _from_trl(record: Mapping[str, Any], source: str) -> dict[str, Any]:
    if "prompt" not in record:
        return _from_full_conversations(record, _as_messages(record["chosen"], "assistant", "chosen"),
                                        _as_messages(record["rejected"], "assistant", "rejected"), source)
    return _pair(record, _as_messages(record["prompt"], "user", "prompt"),
                 _as_messages(record["chosen"], "assistant", "chosen"),
                 _as_messages(record["rejected"], "assistant", "rejected"), source, {})


def _hh_messages(text: str) -> Messages:
    parts = _HH_TURN.split(text)
    if parts[0].strip():
        raise SchemaError("HH-RLHF text must start with '\\n\\nHuman:'")
    return [{"role": "user" if speaker == "Human" else "assistant", "content": content.strip()}
            for speaker, content in zip(parts[1::2], parts[2::2])]


def _from_full_conversations(record: Mapping[str, Any], chosen: Messages, rejected: Messages,
                             source: str) -> dict[str, Any]:
    """Two whole conversations -> prompt (their shared prefix up to the last user turn) + the two endings."""
    shared = 0
    while shared < min(len(chosen), len(rejected)) and chosen[shared] == rejected[shared]:
        shared += 1
    while shared > 0 and chosen[shared - 1]["role"] != "user":
        shared -= 1
    if shared == 0:
        raise SchemaError("chosen and rejected share no prompt ending in a user turn")
    return _pair(record, chosen[:shared], chosen[shared:], rejected[shared:], source, {})


def _prompt_of(record: Mapping[str, Any]) -> Messages:
    prompt = record.get("prompt", record.get("instruction"))
    if prompt is None:
        raise SchemaError("record has no 'prompt' or 'instruction'")
    return _as_messages(prompt, "user", "prompt")


def _score(completion: Mapping[str, Any]) -> float:
    for key in _SCORE_KEYS:
        if isinstance(completion.get(key), (int, float)):
            return float(completion[key])
    raise SchemaError(f"completion has no numeric {' / '.join(_SCORE_KEYS)}")


def _from_ratings(record: Mapping[str, Any], source: str, min_margin: float,
                  stats: PairStats | None) -> list[dict[str, Any]]:
    prompt = _prompt_of(record)
    rated = [(str(c.get("response", "")), _score(c), c.get("model")) for c in record["completions"]]
    pairs = []
    for (text_a, score_a, model_a), (text_b, score_b, model_b) in itertools.combinations(rated, 2):
        if abs(score_a - score_b) <= min_margin:
            if stats is not None:
                stats.skipped["tie" if score_a == score_b else "margin_below_min"] += 1
            continue
        (best, best_score, best_model), (worst, worst_score, worst_model) = sorted(
            [(text_a, score_a, model_a), (text_b, score_b, model_b)], key=lambda c: -c[1])
        meta = {"chosen_score": best_score, "rejected_score": worst_score, "margin": best_score - worst_score}
        meta.update({k: v for k, v in (("chosen_model", best_model), ("rejected_model", worst_model)) if v})
        pairs.append(_pair(record, prompt, [{"role": "assistant", "content": best}],
                           [{"role": "assistant", "content": worst}], source, meta, suffix=str(len(pairs))))
    return pairs


def _from_ranking(record: Mapping[str, Any], source: str) -> list[dict[str, Any]]:
    prompt = _prompt_of(record)
    if "ranking" in record:
        ordered: Sequence[Any] = record["ranking"]
        ranks = list(range(1, len(ordered) + 1))
    else:
        responses, given = record["responses"], record["ranks"]
        if len(responses) != len(given):
            raise SchemaError(f"{len(responses)} responses but {len(given)} ranks")
        order = sorted(range(len(responses)), key=lambda i: given[i])
        ordered, ranks = [responses[i] for i in order], [given[i] for i in order]
    if len(ordered) < 2:
        raise SchemaError("a ranking needs at least two responses")
    pairs = []
    for i, j in itertools.combinations(range(len(ordered)), 2):
        if ranks[i] == ranks[j]:
            raise SchemaError(f"responses {i} and {j} share rank {ranks[i]}: a ranking gives a strict order")
        pairs.append(_pair(record, prompt, _as_messages(ordered[i], "assistant", "response"),
                           _as_messages(ordered[j], "assistant", "response"), source,
                           {"chosen_rank": ranks[i], "rejected_rank": ranks[j], "k": len(ordered)},
                           suffix=f"{i}-{j}"))
    return pairs


def _pair(record: Mapping[str, Any], prompt: Messages, chosen: Messages, rejected: Messages, source: str,
          meta: dict[str, Any], suffix: str | None = None) -> dict[str, Any]:
    base = record.get("id")
    if base is None:
        base = content_id(*(m["role"] + ":" + str(m["content"]) for m in prompt + chosen + rejected))
    elif suffix is not None:
        base = f"{base}-{suffix}"
    return {"id": str(base), "prompt": prompt, "chosen": chosen, "rejected": rejected, "source": source,
            "meta": dump_meta(meta)}
