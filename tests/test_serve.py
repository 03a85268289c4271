"""`instruct serve` over the embedded SmolLM2 model, driven by the real openai client on 127.0.0.1."""
from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.integration]

PROMPT = "Come up with a series of tasks:\n1. Name three colours.\n2."


@pytest.fixture(scope="module")
def engine():
    from instruct.serve.engines import TransformersEngine

    return TransformersEngine(threads=1)


def test_openai_client_against_smollm2(engine, tmp_path):
    import torch

    from instruct.serve.server import serve_in_thread

    log = tmp_path / "requests.jsonl"
    with serve_in_thread(engine, request_log=str(log)) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0)
        assert [m.id for m in client.models.list().data] == [engine.model_name]
        completion = client.completions.create(model=engine.model_name, prompt=PROMPT, max_tokens=5, temperature=0)
        # the served greedy continuation is the model's own greedy continuation
        encoded = engine.tokenizer(PROMPT, return_tensors="pt", add_special_tokens=False)
        with torch.inference_mode():
            direct = engine.model.generate(**encoded, max_new_tokens=5, do_sample=False)
        expected = engine.tokenizer.decode(direct[0, encoded["input_ids"].shape[1]:], skip_special_tokens=True)
        assert completion.choices[0].text == expected and completion.choices[0].finish_reason == "length"
        assert completion.usage.completion_tokens == 5
        assert completion.usage.prompt_tokens == encoded["input_ids"].shape[1]
        stopped = client.completions.create(model=engine.model_name, prompt=PROMPT, max_tokens=5, temperature=0,
                                            stop=[expected.strip().split()[0]])
        assert stopped.choices[0].finish_reason == "stop" and expected.strip().split()[0] not in stopped.choices[0].text
        chat = client.chat.completions.create(model=engine.model_name, max_tokens=4, temperature=0,
                                              messages=[{"role": "user", "content": "What is the capital of France?"}])
        assert chat.choices[0].message.role == "assistant" and chat.choices[0].message.content
        as_json = client.chat.completions.create(model=engine.model_name, max_tokens=6, temperature=0,
                                                 response_format={"type": "json_object"},
                                                 messages=[{"role": "user", "content": "Reply in JSON."}])
        valid = as_json.choices[0].model_extra["json_valid"]
        assert isinstance(valid, bool)
        if valid:
            json.loads(as_json.choices[0].message.content)
        with ThreadPoolExecutor(3) as pool:  # concurrent requests share batched generate() calls
            texts = list(pool.map(lambda i: client.completions.create(
                model=engine.model_name, prompt=f"{i} + {i} =", max_tokens=2, temperature=0).choices[0].text, range(3)))
        assert all(isinstance(t, str) for t in texts)
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(entries) == 7 and {e["status"] for e in entries} == {200}


def test_synth_without_endpoint_serves_the_embedded_model(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    output = tmp_path / "synth"
    result = subprocess.run(
        [sys.executable, "-m", "instruct", "synth", "--method", "self-instruct", "--num", "1", "--output",
         str(output), "progress=false", "serve.threads=1", "self_instruct.request_batch_size=2",
         "self_instruct.patience=1", "self_instruct.bootstrap_params.max_tokens=12",
         "self_instruct.max_tokens_classification=8", "self_instruct.max_tokens_generation=8"],
        capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "serving SmolLM2-135M-Instruct" in result.stderr and "127.0.0.1" in result.stderr
    manifest = json.loads((output / "manifest.json").read_text())
    assert manifest["endpoint"]["served_locally"] is True
    assert manifest["usage"]["responses"] >= 2 and manifest["usage"]["completion_tokens"] > 0
    stages = manifest["counts"]["stages"]
    assert sum(stages["bootstrap_response"].values()) == 2  # every response accounted for, kept or dropped


def test_serves_a_peft_adapter(engine, tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model

    from instruct.serve.engines import GenerationRequest, TransformersEngine

    torch.manual_seed(0)
    adapted = get_peft_model(engine.model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"],
                                                      init_lora_weights=False))
    adapted.save_pretrained(tmp_path / "adapter")
    adapted.unload()  # the fixture's base model stays unadapted for the other tests
    served = TransformersEngine(adapter=str(tmp_path / "adapter"), threads=1)
    assert served.model_name.endswith("+adapter")
    job = GenerationRequest(prompt=PROMPT, max_tokens=4, temperature=0)
    base_ids = engine.tokenizer(PROMPT, return_tensors="pt", add_special_tokens=False)
    with torch.inference_mode():
        base_logits = engine.model(**base_ids).logits[0, -1]
        adapter_logits = served.model(**base_ids).logits[0, -1]
    assert not torch.allclose(base_logits, adapter_logits, atol=1e-3)  # the adapter is really applied
    assert served.generate(job).completion_tokens >= 1
