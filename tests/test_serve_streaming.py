"""`instruct serve` streaming (SSE) and several adapters on one base, through the real openai client."""
from __future__ import annotations

import time
from pathlib import Path

import openai
import pytest

from tests.tiny_models import save_random_lora, save_tiny_llama

PROMPT = "The three primary colours are"
CHAT = [{"role": "user", "content": "Name a colour."}]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from instruct.serve.engines import TransformersEngine
    from instruct.serve.server import serve_in_thread

    root = tmp_path_factory.mktemp("serve")
    model = save_tiny_llama(root / "model")
    adapters = {name: str(save_random_lora(model, root / name, seed)) for name, seed in (("red", 1), ("blue", 2))}
    engine = TransformersEngine(str(model), threads=1, adapters=adapters)
    with serve_in_thread(engine) as server:
        yield engine, openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=60)


def test_stream_chunks_arrive_before_the_end_and_join_to_the_greedy_text(served):
    _, client = served
    full = client.completions.create(model="model", prompt=PROMPT, max_tokens=300, temperature=0)
    assert full.usage.completion_tokens >= 200  # long enough for the timing below to mean something
    started, first, texts = time.perf_counter(), None, []
    for chunk in client.completions.create(model="model", prompt=PROMPT, max_tokens=300, temperature=0, stream=True):
        texts.append(chunk.choices[0].text)
        first = first or (time.perf_counter() if texts[-1] else None)
    ended = time.perf_counter()
    assert "".join(texts) == full.choices[0].text
    assert len([t for t in texts if t]) >= 100  # token by token, not one blob at the end
    assert first - started < 0.5 * (ended - started)  # the first text came long before the last

    chat_full = client.chat.completions.create(model="model", messages=CHAT, max_tokens=16, temperature=0)
    stream = client.chat.completions.create(model="model", messages=CHAT, max_tokens=16, temperature=0, stream=True,
                                            stream_options={"include_usage": True})
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == chat_full.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == chat_full.choices[0].finish_reason
    assert chunks[-1].usage.completion_tokens == chat_full.usage.completion_tokens


def test_streamed_text_respects_stop_strings(served):
    _, client = served
    full = client.completions.create(model="model", prompt=PROMPT, max_tokens=24, temperature=0).choices[0].text
    stop = full.split()[3]  # a word from the middle of the greedy text
    expected = client.completions.create(model="model", prompt=PROMPT, max_tokens=24, temperature=0, stop=[stop])
    streamed = "".join(c.choices[0].text for c in client.completions.create(
        model="model", prompt=PROMPT, max_tokens=24, temperature=0, stop=[stop], stream=True))
    assert streamed == expected.choices[0].text and stop not in streamed


def test_each_adapter_gives_its_own_answer(served):
    import torch

    engine, client = served
    assert [m.id for m in client.models.list().data] == ["model", "red", "blue"]
    answers = {name: client.completions.create(model=name, prompt=PROMPT, max_tokens=8, temperature=0).choices[0].text
               for name in ("model", "red", "blue")}
    assert len(set(answers.values())) == 3
    ids = engine.tokenizer(PROMPT, return_tensors="pt", add_special_tokens=False)
    for name in ("red", "blue"):  # each answer is that adapter's own greedy continuation
        engine.model.set_adapter(engine.peft_names[name])
        with torch.inference_mode():
            direct = engine.model.generate(**ids, max_new_tokens=8, do_sample=False)
        assert engine.tokenizer.decode(direct[0, ids["input_ids"].shape[1]:], skip_special_tokens=True) == answers[name]
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        client.completions.create(model="green", prompt=PROMPT, max_tokens=2)


def test_an_unnamed_adapter_keeps_its_meaning(served, tmp_path):
    from instruct.serve.engines import TransformersEngine
    from instruct.serve.requests import GenerationRequest

    engine, _ = served
    folder = engine.adapters["red"]
    dotted = tmp_path / "run.v2"  # served as BASE+run.v2: '.' and '+' are not valid peft adapter names
    dotted.symlink_to(folder, target_is_directory=True)
    single = TransformersEngine(str(Path(folder).parent / "model"), str(dotted), threads=1)  # the fixture's base
    assert single.model_name == "model+run.v2" and single.model_names == ["model", "model+run.v2"]
    job = GenerationRequest(prompt=PROMPT, max_tokens=8, temperature=0, adapter=single.resolve(None))  # the default: the adapter
    red = GenerationRequest(prompt=PROMPT, max_tokens=8, temperature=0, adapter="red")
    assert single.generate(job, 30).text == engine.generate(red, 30).text
