"""`--method backtranslate`: instruction back-translation (Li et al. 2023, "Self-Alignment with Instruction
Backtranslation", Humpback) over curated DOCUMENT rows.

1. passages: each document's text is split at paragraph boundaries (blank lines); consecutive paragraphs
   are joined while the passage stays within `max_chars`, and passages under `min_chars` are dropped
   (counted); a paragraph longer than `max_chars` on its own is dropped and counted, never cut mid-way;
2. self-augmentation: the model writes the instruction each passage answers;
3. self-curation: the model scores every (instruction, passage) pair on the paper's 5-point scale and pairs
   scoring at least `threshold` are kept, score and rationale in meta.
Small models ramble: a request cut at the token limit is kept when its first paragraph or line was a
complete sentence before the model went on (`instruction_salvaged` in meta), and a judgement that ends
without a score gets one follow-up turn asking for the score alone (`score_followup` in meta).
Every example's meta names its document (`document_id`, `url_or_path`) and the passage's character offsets
in the document's text (`passage_start`, `passage_end`): `text[start:end]` is the answer, verbatim.
Passages are processed in document order, `batch_size` at a time, until `num` pairs are kept.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from instruct.schema import content_id
from instruct.synth.client import LLMClient, Request
from instruct.synth.judges import parse_score
from instruct.synth.self_instruct import SynthOutput

INSTRUCTION_TEMPLATE = """Below is a passage of text. Write the request a user could have sent to an AI assistant \
for which this passage is a good, complete answer. Write only the user's request: one or two sentences, \
no preamble, do not mention "the passage".

Passage:
{passage}

User's request:"""

CURATION_TEMPLATE = """Below is an instruction from a user and a candidate answer. Evaluate whether or not the \
answer is a good example of how an AI assistant should respond to the user's instruction. Assign a score on \
this 5-point scale:
1: the answer is incomplete, vague, off-topic, or contains content not related to the user's question.
2: the answer addresses most of the request but does not directly answer it, e.g. gives a general approach.
3: the answer is helpful and addresses the basic asks of the user, but is not written from an AI assistant's \
perspective (for example an excerpt of a blog post, a web page or search results).
4: the answer is written from an AI assistant's perspective with a clear focus on the instruction; complete, \
clear and comprehensive, with minor room for improvement.
5: a perfect answer from an AI assistant: clear focus on being helpful, expert knowledge, well written, \
logical and easy to follow.

Instruction:
{instruction}

Answer:
{answer}

Briefly give your reasoning, then write "Score: <rating>" on the last line."""

SCORE_FOLLOWUP = 'Now write only your rating on the 5-point scale, as "Score: <rating>".'


def _instruction_params() -> dict[str, Any]:
    return {"temperature": 0.0, "max_tokens": 96}


def _curation_params() -> dict[str, Any]:
    return {"temperature": 0.0, "max_tokens": 160}


FOLLOWUP_PARAMS = {"temperature": 0.0, "max_tokens": 8}
_SENTENCE_END = re.compile(r"[.?!][\"')\]]*$")


def salvage_instruction(text: str) -> str | None:
    """The request of a reply cut at the token limit, if the model finished it before going on: the first
    paragraph (else line) when the reply continues past it and it ends a sentence; None otherwise."""
    text = text.strip()
    for separator in ("\n\n", "\n"):
        head, found, _ = text.partition(separator)
        head = head.strip()
        if found and head and _SENTENCE_END.search(head):
            return head
    return None


@dataclass
class BacktranslateConfig:
    min_chars: int = 200  # shorter passages are not answers worth learning
    max_chars: int = 2000  # paragraphs are joined up to this; a longer single paragraph is skipped
    max_passages_per_document: int = 4  # so one long book does not dominate the set
    threshold: float = 4  # keep pairs scored at least this (the paper's A_4 set; 5 for A_5)
    batch_size: int = 32  # passages sent together
    text_field: str = "text"  # for JSONL / Parquet documents
    instruction_params: dict[str, Any] = field(default_factory=_instruction_params)
    curation_params: dict[str, Any] = field(default_factory=_curation_params)


@dataclass(frozen=True)
class Passage:
    document: dict[str, Any]
    start: int
    end: int
    index: int  # passage number within its document

    @property
    def text(self) -> str:
        return self.document["text"][self.start:self.end]


_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n\s*")


def paragraphs(text: str) -> Iterator[tuple[int, int]]:
    """(start, end) of each paragraph: runs of text between blank lines, surrounding whitespace excluded."""
    position = 0
    for match in [*_PARAGRAPH_BREAK.finditer(text), None]:
        end = match.start() if match else len(text)
        chunk = text[position:end]
        stripped = chunk.strip()
        if stripped:
            start = position + chunk.index(stripped[0])
            yield start, start + len(stripped)
        if match:
            position = match.end()


def passages(document: dict[str, Any], config: BacktranslateConfig, out: SynthOutput) -> list[Passage]:
    """A document's passages; paragraphs and passages that do not fit the bounds are counted."""
    found: list[Passage] = []
    current: tuple[int, int] | None = None

    def close() -> None:
        if current is None:
            return
        if current[1] - current[0] < config.min_chars:
            out.reject("passage", "too_short")
        else:
            found.append(Passage(document, current[0], current[1], len(found)))

    for start, end in paragraphs(document["text"] or ""):
        if end - start > config.max_chars:
            close()
            current = None
            out.reject("passage", "paragraph_too_long")
            continue
        if current is not None and end - current[0] <= config.max_chars:
            current = (current[0], end)
            continue
        close()
        current = (start, end)
    close()
    if len(found) > config.max_passages_per_document:
        out.reject("passage", "over_max_per_document", count=len(found) - config.max_passages_per_document)
        found = found[:config.max_passages_per_document]
    out.keep("passage", len(found))
    return found


class Backtranslate:
    def __init__(self, config: BacktranslateConfig, client: LLMClient, seed: int = 42,
                 progress: Callable[..., Any] | None = None):
        self.config, self.client, self.progress = config, client, progress
        self.model = client.config.model

    def _chat(self, text: str, params: dict[str, Any]) -> Request:
        return Request(messages=({"role": "user", "content": text},), params=params)

    async def run(self, documents: list[dict[str, Any]], num: int) -> SynthOutput:
        out = SynthOutput()
        candidates = [p for document in documents for p in passages(document, self.config, out)]
        bar = self.progress(total=num, desc="pairs kept") if self.progress else None
        kept = 0
        for start in range(0, len(candidates), self.config.batch_size):
            if kept >= num:
                out.reject("pair", "surplus_over_num", count=len(candidates) - start)
                break
            batch = candidates[start:start + self.config.batch_size]
            before = len(out.rows)
            await self._batch(batch, num, out)
            kept = len(out.rows)
            if bar is not None:
                bar.update(kept - before)
        if bar is not None:
            bar.close()
        return out

    async def _batch(self, batch: list[Passage], num: int, out: SynthOutput) -> None:
        config = self.config
        instructions = await self.client.complete_many(
            [self._chat(INSTRUCTION_TEMPLATE.format(passage=p.text), config.instruction_params) for p in batch])
        pairs = []
        for passage, response in zip(batch, instructions):
            record = {"document_id": passage.document["id"], "passage_start": passage.start,
                      "passage_end": passage.end}
            instruction = response.text.strip()
            if response.ok and instruction and response.finish_reason == "length":
                instruction = salvage_instruction(instruction) or ""
                record["instruction_salvaged"] = bool(instruction)
            reason = ("request_failed" if not response.ok else "truncated_instruction" if response.finish_reason ==
                      "length" and not instruction else "empty_instruction" if not instruction else None)
            if reason is not None:
                out.reject("instruction", reason, {**record, "text": response.text, "error": response.error})
                continue
            out.keep("instruction")
            pairs.append((passage, instruction, record))
        prompts = [self._chat(CURATION_TEMPLATE.format(instruction=i, answer=p.text), config.curation_params)
                   for p, i, _ in pairs]
        responses = await self.client.complete_many(prompts)
        judgements = [response.text if response.ok else None for response in responses]
        scores = [None if text is None else parse_score(text) for text in judgements]
        await self._follow_up(prompts, judgements, scores, [record for _, _, record in pairs])
        for (passage, instruction, record), response, judgement, score in zip(pairs, responses, judgements, scores):
            reason = ("request_failed" if judgement is None else "unparsed_score" if score is None
                      else "below_threshold" if score < config.threshold
                      else "surplus_over_num" if len(out.rows) >= num else None)
            if reason is not None:
                out.reject("curation", reason, {**record, "instruction": instruction, "score": score,
                                                "judgement": judgement, "error": response.error})
                continue
            out.keep("curation")
            out.rows.append(self._row(passage, instruction, score, judgement or "", record))

    async def _follow_up(self, prompts: list[Request], judgements: list[str | None], scores: list[float | None],
                         records: list[dict[str, Any]]) -> None:
        """Ask once more, in the same conversation, for the score of every judgement that ended without one."""
        missing = [i for i, (text, score) in enumerate(zip(judgements, scores)) if text is not None and score is None]
        followups = [Request(messages=(*prompts[i].messages, {"role": "assistant", "content": judgements[i]},
                                       {"role": "user", "content": SCORE_FOLLOWUP}), params=FOLLOWUP_PARAMS)
                     for i in missing]
        for i, response in zip(missing, await self.client.complete_many(followups)):
            records[i]["score_followup"] = response.text if response.ok else None
            if response.ok:
                scores[i] = parse_score(response.text)

    def _row(self, passage: Passage, instruction: str, score: float, judgement: str,
             record: dict[str, Any]) -> dict[str, Any]:
        document = passage.document
        meta = {"method": "backtranslate", "model": self.model, "document_id": document["id"],
                "document_source": document.get("source"), "url_or_path": document.get("url_or_path"),
                "passage_start": passage.start, "passage_end": passage.end, "passage_index": passage.index,
                "curation_score": score, "curation": judgement.strip(), "threshold": self.config.threshold,
                **{key: record[key] for key in ("instruction_salvaged", "score_followup") if key in record},
                "params": {"instruction": self.config.instruction_params, "curation": self.config.curation_params}}
        return {"id": content_id("backtranslate", document["id"], str(passage.start), instruction),
                "source": "backtranslate", "meta": meta,
                "messages": [{"role": "user", "content": instruction},
                             {"role": "assistant", "content": passage.text}]}
