"""`instruct export-model`: a merged LoRA as GGUF (reloaded by transformers: same logits, same tokens) and as HF."""
from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

from tests.tiny_models import save_random_lora, save_tiny_llama

TEXTS = ["Hello, world!", "def f(x):\n    return x * 2", "Ünïcödé ½ 日本語 🙂", "<|im_start|>user\nhi<|im_end|>"]


@pytest.fixture(scope="module")
def adapter(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    model = save_tiny_llama(root / "tiny")
    return model, save_random_lora(model, root / "lora", seed=5)


def logits(model, tokenizer, text: str) -> torch.Tensor:
    with torch.inference_mode():
        return model(tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"]).logits[0]


@pytest.mark.slow
def test_gguf_round_trip_matches_the_merged_model(adapter, tmp_path):
    from transformers import AutoModelForCausalLM

    from instruct.export_model import export_model, load_source

    base_folder, lora = adapter
    merged, tokenizer = load_source(str(lora))
    base = AutoModelForCausalLM.from_pretrained(base_folder).eval()
    assert (logits(merged, tokenizer, TEXTS[0]) - logits(base, tokenizer, TEXTS[0])).abs().max() > 1e-2  # merged
    summary = export_model(str(lora), "gguf", tmp_path / "model.gguf", "f32", check=True)
    trip = summary["round_trip"]
    assert trip["tokenizer_mismatches"] == []  # the sample includes unicode, code, whitespace and chat tokens
    assert trip["max_abs_logit_diff"] < 1e-4 and trip["argmax_agreement"] == 1.0  # f32: the same function
    assert summary["tensors"] == {"F32": 2 * 9 + 2}  # 9 per block + embedding + final norm; output tied
    assert not list(tmp_path.glob(".model.gguf.*"))  # written atomically, no temp left


@pytest.mark.slow
def test_hf_export_loads_as_a_plain_model(adapter, tmp_path):
    from transformers import AutoModelForCausalLM

    from instruct.export_model import ExportError, export_model, load_source

    _, lora = adapter
    merged, tokenizer = load_source(str(lora))
    folder = tmp_path / "hf"
    for _ in range(2):  # a second export replaces the first
        export_model(str(lora), "hf", folder, "f16")
    assert (folder / "model.safetensors").is_file() and not (folder / "adapter_config.json").exists()
    loaded = AutoModelForCausalLM.from_pretrained(folder)
    assert next(loaded.parameters()).dtype == torch.float16
    expected = logits(merged, tokenizer, TEXTS[1])
    assert (logits(loaded.float(), tokenizer, TEXTS[1]) - expected).abs().max() < 2e-3 * expected.abs().max() + 1e-3
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(ExportError, match="not written by export-model"):
        export_model(str(lora), "hf", foreign, "f16")
    assert (foreign / "notes.txt").read_text() == "keep me"


def test_cli_refuses_a_gguf_only_quant_for_hf(tmp_path):
    from instruct.cli import main

    result = CliRunner().invoke(main, ["export-model", str(tmp_path), "--format", "hf", "--output",
                                       str(tmp_path / "x"), "--quant", "q8_0"])
    assert result.exit_code == 1 and "Error: --quant 'q8_0' is GGUF-only" in result.output
