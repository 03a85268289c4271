"""Integration: tune the embedded SmolLM2-135M-Instruct briefly on templated data; eval loss falls."""
from __future__ import annotations

import json

import pytest

from instruct.tune import load_config, load_model, train


@pytest.mark.slow
@pytest.mark.integration
def test_smollm2_lora_eval_loss_falls(docstrings, tmp_path):
    rows = []
    for name, doc in docstrings[:60]:
        first = doc.strip().split("\n\n")[0].replace("\n", " ")[:160]
        rows.append({"instruction": f"Quote the summary line of the documentation of `{name}`.",
                     "output": f"The documentation of `{name}` opens with: \"{first}\""})
    data = tmp_path / "templated.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = load_config(None, ["data.max_length=128", "train.micro_batch_tokens=640", "train.grad_accum=1",
                                "train.max_steps=3", "train.lr=1e-3", "train.warmup_steps=0", "data.eval_fraction=0.15",
                                "train.eval_every=3", "method.r=8", "method.alpha=16", "data.cache=false"],
                         {"data.path": str(data), "output": str(tmp_path / "out")})
    result = train(config, show_progress=False)
    assert result.eval_loss < result.initial_eval_loss - 0.2, (result.initial_eval_loss, result.eval_loss)
    model, tokenizer = load_model(adapter=result.output)
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": rows[0]["instruction"]}], tokenize=False,
                                           add_generation_prompt=True)
    ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
    reply = tokenizer.decode(model.generate(**ids, max_new_tokens=12, do_sample=False)[0, ids["input_ids"].shape[1]:])
    assert reply.startswith("The documentation of"), reply
