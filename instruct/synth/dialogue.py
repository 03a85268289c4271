"""`instruct synth --method dialogue --seeds PATH --turns N`: multi-turn conversations, a simulated user vs the endpoint.

Each seed (a topic, or a document to ask about) gets a persona (seeded draw) and a goal. One model plays
the user: it sees the conversation with the roles flipped and a system prompt holding persona, goal and
the rule "reply [DONE] once your goal is met"; the endpoint answers as the assistant. A conversation stops at the first of:
- `turn_limit`: N assistant turns;
- `goal_met`: the user says the done marker;
- `repetition`: a turn is a near copy (ROUGE-L F >= `repetition_threshold`) of an earlier turn of the same
  role; the repeating exchange is dropped;
- `truncated` / `empty_turn` / `request_failed`: the exchange in progress is dropped.
Conversations with fewer than `min_turns` complete exchanges are rejected (`too_short`); the rest pass a
novelty filter across dialogues (ROUGE-L F of their user turns against every conversation kept before
it, in seed order, > `novelty_threshold`: `not_novel`). Kept rows are EXAMPLE conversations in which
every assistant turn is trained (`instruct tune` masks all but assistant tokens). All turns of all
conversations advance in lockstep, one batch of requests per turn, so concurrency is used and reruns
replay the same requests from the cache.
"""
from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from instruct.io.readers.base import InputError
from instruct.schema import content_id
from instruct.synth.client import LLMClient, Request, Response
from instruct.synth.rouge import RougeIndex, rouge_l_tokens, tokenize
from instruct.synth.self_instruct import SynthOutput
from instruct.templates.render import stable_seed

PERSONAS = (
    "a student preparing for an exam who wants short, clear explanations",
    "a busy parent who asks practical questions and dislikes jargon",
    "a retired engineer who is curious and asks precise follow-up questions",
    "a small-business owner looking for concrete steps they can apply this week",
    "a beginner programmer who is unsure of the terms and asks for examples",
    "a journalist checking facts who asks for sources of doubt and caveats",
    "a non-native English speaker who writes simply and asks for simple answers",
    "a sceptical reader who pushes back on vague claims",
)

USER_SYSTEM = (
    "You are role-playing a user who is chatting with an AI assistant. You are {persona}. "
    "Your goal: {goal}\n"
    "Write only your next message to the assistant, in your own voice, one to three sentences. Ask one thing "
    "at a time and follow up on the assistant's answers. When the assistant has fully met your goal, reply "
    "with exactly {done} and nothing else."
)
KICKOFF = "(The assistant is waiting. Write your first message.)"


def _user_params() -> dict[str, Any]:
    return {"temperature": 0.9, "top_p": 0.95, "max_tokens": 128}


def _assistant_params() -> dict[str, Any]:
    return {"temperature": 0.7, "top_p": 0.95, "max_tokens": 512}


@dataclass
class DialogueConfig:
    turns: int = 4  # at most this many assistant turns (`--turns`)
    min_turns: int = 1  # complete user/assistant exchanges a kept conversation needs
    personas: list[str] = field(default_factory=lambda: list(PERSONAS))
    topic_goal: str = "get useful, correct help about {topic}."
    document_goal: str = "understand this text and ask about what it leaves unclear:\n{document}"
    document_chars: int = 1500  # of a document seed shown to the user model
    user_system: str = USER_SYSTEM
    done_marker: str = "[DONE]"
    assistant_system: str | None = None  # system prompt of the answering side (also kept in the rows)
    repetition_threshold: float = 0.7
    novelty_threshold: float = 0.7
    user_params: dict[str, Any] = field(default_factory=_user_params)
    assistant_params: dict[str, Any] = field(default_factory=_assistant_params)


@dataclass
class Seed:
    id: str
    topic: str | None = None
    document: str | None = None


def load_seeds(path: str) -> list[Seed]:
    """Seeds from a text file (a topic per line), JSONL (a string, or {topic} / {text} per line) or shards
    (DOCUMENT rows: `text` is a document; EXAMPLE rows: the first user turn is a topic)."""
    target = Path(path)
    if target.is_dir():
        from instruct.io.shards import read_shards

        seeds = []
        for row in read_shards(target).to_pylist():
            if "text" in row:
                seeds.append(Seed(str(row["id"]), document=row["text"]))
            else:
                first = next((m["content"] for m in row["messages"] if m["role"] == "user"), "")
                seeds.append(Seed(str(row["id"]), topic=first))
        return [s for s in seeds if (s.topic or s.document or "").strip()]
    if not target.is_file():
        raise FileNotFoundError(f"{path}: no such seed file or shards folder")
    seeds = []
    with open(target, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if line.strip():
                seeds.append(_seed_line(line, f"{path}:{number}", target.suffix == ".jsonl"))
    if not seeds:
        raise InputError(f"{path}: no seeds (empty file)")
    return seeds


def _seed_line(line: str, where: str, jsonl: bool) -> Seed:
    if not jsonl:
        return Seed(content_id(line.strip())[:16], topic=line.strip())
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise InputError(f"{where}: invalid JSON ({error.msg})") from None
    if isinstance(record, str) and record.strip():
        return Seed(content_id(record)[:16], topic=record.strip())
    if isinstance(record, dict):
        for key, kind in (("topic", "topic"), ("text", "document")):
            if isinstance(record.get(key), str) and record[key].strip():
                return Seed(str(record.get("id") or content_id(record[key])[:16]), **{kind: record[key].strip()})
    raise InputError(f"{where}: a seed is a string or an object with a non-empty 'topic' or 'text'")


@dataclass
class Conversation:
    seed: Seed
    persona: str
    goal: str
    messages: list[dict[str, str]] = field(default_factory=list)  # user / assistant turns, no system
    stop: str | None = None

    def turns(self, role: str) -> list[str]:
        return [m["content"] for m in self.messages if m["role"] == role]


class Dialogues:
    def __init__(self, config: DialogueConfig, client: LLMClient, seed: int = 42,
                 progress: Callable[..., Any] | None = None):
        from instruct.config import ConfigError

        if config.turns < 1 or config.min_turns < 1 or not config.personas:
            raise ConfigError("dialogue: turns and min_turns must be at least 1 and personas non-empty")
        self.config, self.client, self.seed, self.progress = config, client, seed, progress

    async def run(self, seeds: list[Seed], num: int | None = None) -> SynthOutput:
        out = SynthOutput()
        chosen = seeds[:num]
        out.keep("input", len(chosen))
        if len(seeds) > len(chosen):
            out.reject("input", "beyond_num", count=len(seeds) - len(chosen))
        conversations = [self._start(s) for s in chosen]
        bar = self.progress(total=self.config.turns, desc="dialogue turns") if self.progress else None
        for _ in range(self.config.turns):
            active = [c for c in conversations if c.stop is None]
            if not active:
                break
            await self._turn(active)
            if bar is not None:
                bar.update()
        if bar is not None:
            bar.close()
        out.outcomes["stop"] = Counter(c.stop for c in conversations)
        out.outcomes["assistant_turns"] = Counter(str(len(c.turns("assistant"))) for c in conversations)
        self._keep_novel(conversations, out)
        return out

    def _start(self, seed: Seed) -> Conversation:
        config = self.config
        persona = config.personas[stable_seed(self.seed, seed.id, "persona") % len(config.personas)]
        goal = (config.topic_goal.replace("{topic}", seed.topic) if seed.topic is not None
                else config.document_goal.replace("{document}", seed.document[:config.document_chars]))
        return Conversation(seed, persona, goal)

    async def _turn(self, active: list[Conversation]) -> None:
        config = self.config
        users = await self.client.complete_many([self._user_request(c) for c in active])
        answering = []
        for conversation, response in zip(active, users):
            reason = self._user_reason(conversation, response)
            if reason is not None:
                conversation.stop = reason
                continue
            conversation.messages.append({"role": "user", "content": response.text.strip()})
            answering.append(conversation)
        system = [{"role": "system", "content": config.assistant_system}] if config.assistant_system else []
        replies = await self.client.complete_many([
            Request(messages=tuple(system + c.messages), params=config.assistant_params) for c in answering])
        for conversation, response in zip(answering, replies):
            reason = self._reply_reason(conversation, response)
            if reason is not None:
                conversation.messages.pop()  # the exchange in progress is not kept without its answer
                conversation.stop = reason
                continue
            conversation.messages.append({"role": "assistant", "content": response.text.strip()})
            if len(conversation.turns("assistant")) >= config.turns:
                conversation.stop = "turn_limit"

    def _user_request(self, conversation: Conversation) -> Request:
        """The user model's view: its persona as system prompt, its own turns as 'assistant'."""
        config = self.config
        system = (config.user_system.replace("{persona}", conversation.persona)
                  .replace("{goal}", conversation.goal).replace("{done}", config.done_marker))
        flipped = [{"role": "assistant" if m["role"] == "user" else "user", "content": m["content"]}
                   for m in conversation.messages]
        return Request(messages=({"role": "system", "content": system}, {"role": "user", "content": KICKOFF},
                                 *flipped), params=config.user_params)

    def _user_reason(self, conversation: Conversation, response: Response) -> str | None:
        text = response.text.strip()
        if not response.ok:
            return "request_failed"
        if self.config.done_marker.casefold() in text.casefold():
            return "goal_met"
        if not text:
            return "empty_turn"
        if response.finish_reason == "length":
            return "truncated"
        return "repetition" if self._repeats(text, conversation.turns("user")) else None

    def _reply_reason(self, conversation: Conversation, response: Response) -> str | None:
        text = response.text.strip()
        if not response.ok:
            return "request_failed"
        if not text:
            return "empty_turn"
        if response.finish_reason == "length":
            return "truncated"
        return "repetition" if self._repeats(text, conversation.turns("assistant")) else None

    def _repeats(self, text: str, earlier: list[str]) -> bool:
        tokens = tokenize(text)
        return any(rouge_l_tokens(tokenize(e), tokens) >= self.config.repetition_threshold for e in earlier)

    def _keep_novel(self, conversations: list[Conversation], out: SynthOutput) -> None:
        config = self.config
        index = RougeIndex(config.novelty_threshold)
        for conversation in conversations:
            record = {"seed_id": conversation.seed.id, "stop": conversation.stop, "messages": conversation.messages}
            if len(conversation.turns("assistant")) < config.min_turns:
                out.reject("dialogue", "too_short", record)
                continue
            users = "\n".join(conversation.turns("user"))
            similarity, _ = index.max_similarity(users)
            if similarity > config.novelty_threshold:
                out.reject("dialogue", "not_novel", {**record, "rouge_l": round(similarity, 3)})
                continue
            index.add(users)
            out.keep("dialogue")
            out.rows.append(self._row(conversation))

    def _row(self, conversation: Conversation) -> dict[str, Any]:
        config = self.config
        system = [{"role": "system", "content": config.assistant_system}] if config.assistant_system else []
        meta = {"method": "dialogue", "model": self.client.config.model, "seed_id": conversation.seed.id,
                "persona": conversation.persona, "goal": conversation.goal, "stop": conversation.stop,
                "assistant_turns": len(conversation.turns("assistant")), "trained_turns": "every assistant turn",
                "params": {"user": config.user_params, "assistant": config.assistant_params}}
        return {"id": content_id("dialogue", conversation.seed.id, json.dumps(conversation.messages)),
                "source": "dialogue", "meta": meta, "messages": system + conversation.messages}
