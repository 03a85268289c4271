"""`instruct export-model`: a tuned adapter (merged, dequantised after QLoRA) or a model, as a GGUF file
for llama.cpp / Ollama or a plain safetensors folder for vLLM, written atomically.

`round_trip()` reloads a GGUF with transformers (`gguf_file=`) and compares logits and tokenization
with the model it came from, so an export is checked, not assumed.
"""
from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from instruct.export_model.gguf_file import QUANTS, ExportError, write_gguf
from instruct.io.shards import atomic_path

__all__ = ["QUANTS", "ExportError", "export_model", "load_source", "round_trip"]

HF_DTYPES = {"f32": "float32", "f16": "float16", "bf16": "bfloat16"}
MARKER = "export_model.json"  # written into every HF folder we export: the mark of a folder we may replace
SAMPLE_TEXTS = ["Hello, world!", "The quick brown fox jumps over the lazy dog.", "  two  spaces\tand a tab\n",
                "def add(a, b):\n    return a + b", "Ünïcödé — ½ ∑ 日本語 🙂", "<|im_start|>user\nhi<|im_end|>",
                "1234567890 3.14159 -42", "don't won't can't I'm we'll"]


def load_source(source: str | None, base: str | None = None) -> tuple[Any, Any]:
    """(fp32 model, tokenizer): an adapter merged into its base, or a model folder / .gguf / the default."""
    from instruct.tune.methods import is_adapter, load_model, merged_model

    if source is not None and Path(source).is_dir() and is_adapter(source):
        return merged_model(source, base)
    model, tokenizer = load_model(source, dtype="fp32", quantize_4bit=False)
    return model, tokenizer


def export_model(source: str | None, fmt: str, output: str | Path, quant: str = "f16", base: str | None = None,
                 check: bool = False) -> dict[str, Any]:
    """Write the export; returns a summary (path, bytes, seconds, and the round-trip figures when checked)."""
    if fmt not in ("gguf", "hf"):
        raise ExportError(f"--format {fmt!r}: choose gguf or hf")
    if fmt == "hf" and quant not in HF_DTYPES:
        raise ExportError(f"--quant {quant!r} is GGUF-only; an HF folder is one of {', '.join(HF_DTYPES)}")
    output = Path(output)
    started = time.perf_counter()
    model, tokenizer = load_source(source, base)
    summary: dict[str, Any] = {"source": source or "default", "format": fmt, "quant": quant, "output": str(output)}
    if fmt == "gguf":
        with atomic_path(output) as tmp:
            summary["tensors"] = write_gguf(model, tokenizer, tmp, quant, name=source)
        summary["bytes"] = output.stat().st_size
    else:
        summary["bytes"] = _write_hf(model, tokenizer, output, quant, summary)
    summary["seconds"] = round(time.perf_counter() - started, 2)
    if check and fmt == "gguf":
        summary["round_trip"] = round_trip(output, model, tokenizer)
    return summary


def _write_hf(model: Any, tokenizer: Any, output: Path, quant: str, summary: dict[str, Any]) -> int:
    import torch

    if output.exists() and any(output.iterdir()) and not (output / MARKER).is_file():
        raise ExportError(f"{output}: exists and was not written by export-model; choose another --output")
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    try:
        model.to(getattr(torch, HF_DTYPES[quant])).save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        (staging / MARKER).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        size = sum(f.stat().st_size for f in staging.iterdir())
        if output.exists():
            shutil.rmtree(output)
        staging.rename(output)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return size


def round_trip(path: Path, model: Any, tokenizer: Any, texts: list[str] | None = None) -> dict[str, Any]:
    """Load the GGUF back with transformers; the largest logit difference and any tokenization mismatch."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    texts = texts or SAMPLE_TEXTS
    path = Path(path)
    loaded = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32).eval()
    loaded_tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    mismatched = [t for t in texts if loaded_tokenizer(t, add_special_tokens=False)["input_ids"]
                  != tokenizer(t, add_special_tokens=False)["input_ids"]]
    worst, scale, agree, total = 0.0, 0.0, 0, 0
    model = model.float().eval()
    with torch.inference_mode():
        for text in texts:
            ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"]
            expected, got = model(ids).logits[0], loaded(ids).logits[0]
            worst = max(worst, float((expected - got).abs().max()))
            scale = max(scale, float(expected.abs().max()))
            agree += int((expected.argmax(-1) == got.argmax(-1)).sum())
            total += ids.shape[1]
    return {"max_abs_logit_diff": worst, "max_abs_logit": scale, "argmax_agreement": agree / total,
            "tokenizer_mismatches": mismatched}
