"""Quality filters for instruction pairs: EXAMPLE rows (messages) and PREFERENCE rows (prompt/chosen).

The document filters read `text`; these read the pair a model is trained on: the last user turn
(the instruction) and the assistant answer after it (for PREFERENCE rows, the chosen answer: a
poor rejected answer is the point of the pair). Each rule is its own step, its scores go to
meta[step], and a row that cannot be read as a pair (no user or no assistant turn) is dropped as
`no_pair` and counted, never passed on silently.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import pyarrow as pa

from instruct.filters.text_stats import duplicate_ngram_chars, ratio, rounded, tokenize
from instruct.pipeline.step import Step, StepOutput, merge_meta, replace_column
from instruct.schema import load_meta

Messages = list[dict[str, Any]]


def instruction_and_answer(row: dict[str, Any]) -> tuple[str, str] | None:
    """(instruction, answer) of an EXAMPLE or PREFERENCE row, or None when there is no such pair."""
    if "messages" in row:
        turns: Messages = row["messages"] or []
        last_answer = max((i for i, m in enumerate(turns) if m["role"] == "assistant"), default=None)
        if last_answer is None:
            return None
        prompt, answer = turns[:last_answer], turns[last_answer]["content"] or ""
    else:
        prompt = row.get("prompt") or []
        answer = "\n".join(m["content"] or "" for m in row.get("chosen") or [] if m["role"] == "assistant")
        if not row.get("chosen"):
            return None
    users = [m["content"] or "" for m in prompt if m["role"] == "user"]
    return (users[-1], answer) if users else None


class PairFilter(Step):
    """Base of the pair rules: subclasses implement `judge(instruction, answer, meta)`."""

    columns: ClassVar[tuple[str, ...]] = ("messages", "chosen")

    def judge(self, instruction: str, answer: str, meta: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
        raise NotImplementedError

    def apply(self, table: pa.Table) -> StepOutput:
        if not any(c in table.column_names for c in self.columns):
            raise ValueError(f"{self.name}: needs EXAMPLE (messages) or PREFERENCE (prompt, chosen) rows; "
                             f"got columns {table.column_names}")
        reasons: list[str | None] = []
        metas: list[str] = []
        for row in table.to_pylist():
            pair = instruction_and_answer(row)
            if pair is None:
                reasons.append("no_pair")
                metas.append(row["meta"])
                continue
            reason, scores = self.judge(pair[0], pair[1], load_meta(row["meta"]))
            reasons.append(reason)
            metas.append(merge_meta(row["meta"], {self.name: scores}) if scores else row["meta"])
        return StepOutput(replace_column(table, "meta", metas), reasons)


TERMINAL = (".", "!", "?", "\"", "'", ")", "]", "}", "`", "*", ":", ";", "”", "’", "。", "！", "？")
DANGLING_WORDS = frozenset("a an the and or but of to in on for with by from that which is are was were as at "
                           "because if then so".split())


class PairAnswer(PairFilter):
    """Empty and truncated answers: nothing said, cut by the token limit, or stopping mid-sentence."""

    name = "pair_answer"

    @dataclass
    class Config:
        min_answer_chars: int = 1  # after stripping whitespace
        truncation: bool = True  # finish_reason == length in meta, an unclosed ``` fence, a dangling last word
        min_words_for_dangling: int = 8  # short answers ("Paris", "42") are not judged by their last word

    def judge(self, instruction: str, answer: str, meta: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
        stripped = answer.strip()
        scores = {"answer_chars": len(stripped)}
        if len(stripped) < self.config.min_answer_chars:
            return "empty_answer", scores
        if not self.config.truncation:
            return None, scores
        if meta.get("finish_reason") == "length" or (meta.get("synth") or {}).get("finish_reason") == "length":
            return "truncated_answer", {**scores, "truncated_by": "finish_reason"}
        if stripped.count("```") % 2:
            return "truncated_answer", {**scores, "truncated_by": "open_code_fence"}
        words = stripped.split()
        last = words[-1].lower()
        if (len(words) >= self.config.min_words_for_dangling and not stripped.endswith(TERMINAL)
                and (last in DANGLING_WORDS or stripped.endswith(","))):
            return "truncated_answer", {**scores, "truncated_by": "dangling_word"}
        return None, scores


class PairLanguage(PairFilter):
    """An answer in another language than its instruction (fastText lid.176, both sides confident)."""

    name = "pair_language"

    @dataclass
    class Config:
        min_score: float = 0.65  # both predictions at least this confident, or the row is not judged
        min_chars: int = 20  # shorter texts are too short to identify

    def setup(self) -> None:
        from instruct.filters.language import Language

        self._language = Language(languages=[], prose_only=True)
        self._language.setup()  # a step used as a library: its setup is part of ours

    def predict(self, text: str) -> tuple[str, float]:
        from instruct.filters.prose import prose_text

        return self._language.predict(prose_text(text) or text)

    def judge(self, instruction: str, answer: str, meta: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
        if min(len(instruction.strip()), len(answer.strip())) < self.config.min_chars:
            return None, {}
        (asked, asked_score), (said, said_score) = self.predict(instruction), self.predict(answer)
        scores = {"instruction": asked, "answer": said, "scores": [round(asked_score, 3), round(said_score, 3)]}
        confident = min(asked_score, said_score) >= self.config.min_score
        return ("language_mismatch" if confident and asked != said else None), scores


REFUSALS = (
    "as an ai language model", "as a language model", "as an ai assistant", "as a large language model",
    "as an artificial intelligence", "i'm sorry, but i cannot", "i'm sorry, but i can't", "i am sorry, but i cannot",
    "i cannot fulfill", "i can't fulfill", "i cannot assist with", "i can't assist with", "i cannot help with that",
    "i can't help with that", "i'm not able to provide", "i am not able to provide", "i'm unable to provide",
    "i am unable to provide", "i don't have personal opinions", "i do not have personal opinions",
    "i don't have the ability to", "i do not have access to real-time", "my knowledge cutoff",
    "it is not appropriate for me", "openai's use case policy", "against my programming",
)


class PairRefusal(PairFilter):
    """Refusals and assistant boilerplate ("As an AI language model ...") in the answer."""

    name = "pair_refusal"

    @dataclass
    class Config:
        phrases: list[str] = field(default_factory=lambda: list(REFUSALS))  # lower-case substrings
        extra_phrases: list[str] = field(default_factory=list)  # added to the defaults
        window: int | None = 400  # look in the answer's first N characters (None: everywhere)

    def __init__(self, config=None, **params) -> None:
        super().__init__(config, **params)
        self._phrases = [p.lower() for p in [*self.config.phrases, *self.config.extra_phrases]]

    def judge(self, instruction: str, answer: str, meta: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
        head = answer[: self.config.window].lower().replace("’", "'")
        found = next((p for p in self._phrases if p in head), None)
        return ("refusal", {"phrase": found}) if found else (None, {})


class PairRepetition(PairFilter):
    """Answers that loop: characters inside word n-grams already seen in the answer (Gopher's measure)."""

    name = "pair_repetition"

    @dataclass
    class Config:
        n: int = 5
        max_dup_ngram_frac: float = 0.3  # of the answer's characters
        min_words: int = 20  # shorter answers are not judged

    def judge(self, instruction: str, answer: str, meta: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
        words = tokenize(answer).words
        if len(words) < self.config.min_words:
            return None, {}
        frac = ratio(duplicate_ngram_chars(words, self.config.n), len(answer.strip()))
        scores = rounded({f"dup_{self.config.n}_gram_char_frac": frac})
        return ("repeated_ngrams" if frac > self.config.max_dup_ngram_frac else None), scores


class PairLength(PairFilter):
    """Instruction (and optionally answer) length bounds, in words."""

    name = "pair_length"

    @dataclass
    class Config:
        min_instruction_words: int | None = 3
        max_instruction_words: int | None = 2048
        min_answer_words: int | None = None
        max_answer_words: int | None = None

    def judge(self, instruction: str, answer: str, meta: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
        c = self.config
        asked, said = len(instruction.split()), len(answer.split())
        scores = {"instruction_words": asked, "answer_words": said}
        for reason, value, low, high in (("instruction", asked, c.min_instruction_words, c.max_instruction_words),
                                         ("answer", said, c.min_answer_words, c.max_answer_words)):
            if low is not None and value < low:
                return f"{reason}_too_short", scores
            if high is not None and value > high:
                return f"{reason}_too_long", scores
        return None, scores


def pair_texts(table: pa.Table) -> list[tuple[str, str] | None]:
    """The (instruction, answer) of every row, None where a row has no pair."""
    return [instruction_and_answer(row) for row in table.to_pylist()]
