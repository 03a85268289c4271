"""Shared pieces for the tune tests: a tiny random Llama with the real SmolLM2 tokenizer, and real data."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Callable

import pytest

from instruct.schema import examples_table


def make_tiny_model(folder: Path, bias: bool = False) -> Path:
    """A 2-layer, 64-wide Llama (random weights) saved with SmolLM2's tokenizer and chat template."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from instruct.models import resolve_model

    tokenizer = AutoTokenizer.from_pretrained(resolve_model())
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                         tie_word_embeddings=True, attention_bias=bias, mlp_bias=bias,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def conversations(docstrings: list[tuple[str, str]], count: int, offset: int = 0) -> list[dict]:
    """Real prose as Q/A pairs; every third one is multi-turn with a system prompt."""
    rows = []
    for index, (name, doc) in enumerate(docstrings[offset: offset + count]):
        messages = [{"role": "user", "content": f"What does {name} do?"},
                    {"role": "assistant", "content": doc[:300]}]
        if index % 3 == 0:
            messages = [{"role": "system", "content": "Answer briefly."}, *messages,
                        {"role": "user", "content": "Name it again."}, {"role": "assistant", "content": name}]
        rows.append({"id": f"ex{offset + index}", "messages": messages, "source": "test", "meta": "{}"})
    return rows


def write_jsonl(rows: list[dict], path: Path) -> Path:
    path.write_text("".join(json.dumps({"messages": r["messages"], "id": r["id"]}) + "\n" for r in rows))
    return path


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory, docstrings) -> Path:
    from instruct.io.shards import write_table

    folder = tmp_path_factory.mktemp("shards")
    write_table(examples_table(conversations(docstrings, 48)), folder / "part-0000.arrow")
    return folder


def tiny_config(model: Path, data: Path, output: Path, *overrides: str):
    from instruct.tune import load_config

    base = ["data.max_length=256", "train.micro_batch_tokens=512", "train.grad_accum=2", "train.lr=3e-3",
            "train.eval_every=5", "train.save_every=5", "data.eval_fraction=0.1", "train.threads=1",
            "method.dropout=0.1"]
    return load_config(None, base + list(overrides), {"model": str(model), "data.path": str(data), "output": str(output)})


def start_until_killed(model: Path, data: Path, output: Path, args: list[str],
                       kill_at_step: int) -> Callable[[], None]:
    """Start training in a child process that SIGKILLs itself right after optimizer step `kill_at_step`;
    returns the wait for it (which checks it died so), so the caller may train its reference meanwhile."""
    import signal
    import sys

    script = (f"import os, signal, sys; sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
              "from test_tune_support import tiny_config\nfrom instruct.tune import train\n"
              f"config = tiny_config({str(model)!r}, {str(data)!r}, {str(output)!r}, *{args!r})\n"
              "def die(record):\n"
              f"    if record['step'] == {kill_at_step}: os.kill(os.getpid(), signal.SIGKILL)\n"
              "train(config, on_step=die, show_progress=False)\n")
    finished = started([sys.executable, "-c", script], timeout=900)

    def wait() -> None:
        process = finished()
        assert process.returncode == -signal.SIGKILL, process.stderr[-2000:]

    return wait


def started(command: list[str], timeout: float = 600, **options) -> Callable[[], subprocess.CompletedProcess]:
    """Start `command` (text output captured) and return the wait for it, so the caller may work meanwhile."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **options)

    def finished() -> subprocess.CompletedProcess:
        stdout, stderr = process.communicate(timeout=timeout)
        return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)

    return finished


def run_together(*commands: list[str], timeout: float = 600, **options) -> list[subprocess.CompletedProcess]:
    """Independent processes started at once: their imports and setup overlap instead of queueing, on a
    machine with a core to spare."""
    waits = [started(command, timeout, **options) for command in commands]
    return [wait() for wait in waits]
