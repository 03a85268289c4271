"""`instruct chat [--model M] [--adapter DIR]`: talk to a model in the terminal, offline.

The conversation goes through the model's own chat template (the one `instruct tune` trained
with) and the serving engine's streaming, so what you see is what `instruct serve` would answer.
Lines starting with `/` are commands: /reset, /system TEXT, /exit.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any, TextIO

import click

from instruct.errors import user_errors

HELP = "commands: /reset (forget the conversation), /system TEXT (set the system prompt), /exit"


@dataclass
class Conversation:
    """The history sent with every turn; the system prompt survives /reset."""

    system: str | None = None
    turns: list[dict[str, str]] = field(default_factory=list)

    def messages(self) -> list[dict[str, str]]:
        return ([{"role": "system", "content": self.system}] if self.system else []) + self.turns


def chat_loop(engine: Any, conversation: Conversation, lines: TextIO, out: TextIO, notes: TextIO,
              max_tokens: int, temperature: float, timeout: float = 600.0) -> int:
    """Answer each input line, streaming the reply to `out`; returns the number of replies."""
    import queue

    from instruct.serve.engines import stream_text
    from instruct.serve.requests import GenerationRequest

    replies = 0
    prompt = "you> " if lines.isatty() else ""
    while True:
        if prompt:
            notes.write(prompt)
            notes.flush()
        line = lines.readline()
        if not line:
            return replies
        text = line.rstrip("\n")
        command, _, argument = text.strip().partition(" ")
        if command in ("/exit", "/quit"):
            return replies
        if command == "/reset":
            conversation.turns.clear()
            notes.write("(conversation cleared)\n")
            continue
        if command == "/system":
            conversation.system = argument.strip() or None
            notes.write(f"(system prompt {'set' if conversation.system else 'removed'})\n")
            continue
        if command.startswith("/") or not text.strip():
            notes.write(HELP + "\n" if command.startswith("/") else "")
            continue
        conversation.turns.append({"role": "user", "content": text})
        job = GenerationRequest(messages=conversation.messages(), max_tokens=max_tokens, temperature=temperature,
                  deltas=queue.Queue(), adapter=engine.resolve(None))  # --adapter applies to every turn
        future = engine.submit(job)
        for delta in stream_text(job, future, timeout):
            out.write(delta)
            out.flush()
        out.write("\n")
        out.flush()
        conversation.turns.append({"role": "assistant", "content": future.result().text})
        replies += 1


@click.command()
@click.option("--model", help="HF folder or .gguf file (default: the embedded SmolLM2-135M-Instruct).")
@click.option("--adapter", type=click.Path(file_okay=False, exists=True), help="A tuned peft adapter folder.")
@click.option("--system", help="A system prompt to start with (change it with /system).")
@click.option("--max-tokens", type=click.IntRange(1), default=512, show_default=True, help="Per reply.")
@click.option("--temperature", type=click.FloatRange(0, 2), default=0.7, show_default=True, help="0: greedy.")
@click.option("--threads", type=int, help="CPU threads (default: torch's).")
def chat(model: str | None, adapter: str | None, system: str | None, max_tokens: int, temperature: float,
         threads: int | None) -> None:
    """An interactive chat with history, the model's chat template and streamed replies."""
    from instruct.serve.engines import TransformersEngine

    with user_errors():
        engine = TransformersEngine(model, adapter, threads=threads)
    if sys.stdin.isatty():
        click.echo(f"chatting with {engine.model_name}; {HELP}", err=True)
    try:
        chat_loop(engine, Conversation(system), sys.stdin, sys.stdout, sys.stderr, max_tokens, temperature)
    except KeyboardInterrupt:
        click.echo("", err=True)
