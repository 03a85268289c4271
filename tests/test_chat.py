"""`instruct chat` driven through stdin: the model's own replies, with history kept and /reset, /system obeyed."""
from __future__ import annotations

import subprocess
import sys

import pytest

from tests.tiny_models import save_tiny_llama


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return save_tiny_llama(tmp_path_factory.mktemp("chat") / "tiny", seed=3, tied=False)


def greedy_reply(model, tokenizer, messages, max_tokens: int) -> str:
    import torch

    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)
    with torch.inference_mode():
        output = model.generate(**ids, max_new_tokens=max_tokens, do_sample=False)
    return tokenizer.decode(output[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)


def test_chat_through_stdin_keeps_history_and_obeys_commands(tiny):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    lines = ["Hello there.", "What did I just say?", "/reset", "Hello there.", "/system You are terse.",
             "Hello there.", "/exit", "never read"]
    result = subprocess.run([sys.executable, "-m", "instruct", "chat", "--model", str(tiny), "--temperature", "0",
                             "--max-tokens", "6", "--threads", "1"], input="\n".join(lines) + "\n",
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    model, tokenizer = AutoModelForCausalLM.from_pretrained(tiny).eval(), AutoTokenizer.from_pretrained(tiny)
    first = greedy_reply(model, tokenizer, [{"role": "user", "content": lines[0]}], 6)
    second = greedy_reply(model, tokenizer, [{"role": "user", "content": lines[0]}, {"role": "assistant",
                                             "content": first}, {"role": "user", "content": lines[1]}], 6)
    with_system = greedy_reply(model, tokenizer, [{"role": "system", "content": "You are terse."},
                                                  {"role": "user", "content": lines[0]}], 6)
    assert len({first, second, with_system}) == 3  # history and the system prompt change the answer
    # after /reset the first question gets the first answer again; nothing after /exit is answered
    assert result.stdout == f"{first}\n{second}\n{first}\n{with_system}\n"
    assert "(conversation cleared)" in result.stderr and "(system prompt set)" in result.stderr
