"""Write a Llama-family causal LM as a GGUF file llama.cpp / Ollama / transformers load: llama.cpp's tensor
names and metadata keys, the tokenizer (BPE vocabulary, merges, special ids, chat template) inside.

Q and K projections are stored permuted, as llama.cpp's own converter stores them: GGUF's rotary
embedding pairs neighbouring dimensions where HF rotates halves (transformers undoes it on load).
"""
from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

ARCHITECTURES = ("llama", "mistral")  # HF model_type values llama.cpp reads as its "llama" architecture
QUANTS = ("f32", "f16", "bf16", "q8_0")
# sha256 of the newline-joined token list -> llama.cpp's `tokenizer.ggml.pre` (what the embedded GGUF carries)
KNOWN_VOCABULARIES = {"d1f2ce856b324081b621d9e2e8dbd22879f462329f3fd4aa39fa758dddb2ce55": "smollm"}


class ExportError(ValueError):
    """A model this exporter cannot write faithfully."""


def write_gguf(model: Any, tokenizer: Any, path: Path, quant: str = "f16", name: str | None = None) -> dict[str, int]:
    """Write `model` to `path` (the caller makes it atomic); returns tensor counts per stored type."""
    import gguf

    config = model.config
    if config.model_type not in ARCHITECTURES:
        raise ExportError(f"GGUF export supports Llama-family models ({', '.join(ARCHITECTURES)}), "
                          f"not {config.model_type!r}: use --format hf")
    rope = getattr(config, "rope_scaling", None) or {}
    if rope.get("rope_type", rope.get("type", "default")) not in ("default", None):
        raise ExportError(f"rope scaling {rope!r} is not supported by this GGUF exporter: use --format hf")
    qtype, file_type = _types(gguf, quant)
    writer = gguf.GGUFWriter(str(path), "llama")
    _write_metadata(writer, config, file_type, name or getattr(config, "_name_or_path", "") or "model")
    _write_tokenizer(gguf, writer, tokenizer, config.vocab_size)
    counts: dict[str, int] = {}
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config.num_hidden_layers)
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    for hf_name, tensor in model.state_dict().items():
        if hf_name == "lm_head.weight" and config.tie_word_embeddings:
            continue  # llama.cpp reuses token_embd when output.weight is absent
        gguf_name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            raise ExportError(f"no GGUF name for tensor {hf_name!r}")
        data = tensor.detach().float().cpu().numpy()
        if hf_name.endswith("q_proj.weight"):
            data = _permute(data, config.num_attention_heads, head_dim)
        elif hf_name.endswith("k_proj.weight"):
            data = _permute(data, config.num_key_value_heads, head_dim)
        stored = qtype if data.ndim == 2 else gguf.GGMLQuantizationType.F32  # norms stay f32, as llama.cpp does
        if stored == gguf.GGMLQuantizationType.Q8_0 and data.shape[-1] % 32:
            stored = gguf.GGMLQuantizationType.F16  # Q8_0 blocks are 32 values along a row
        if stored == gguf.GGMLQuantizationType.F32:
            writer.add_tensor(gguf_name, data)
        elif stored == gguf.GGMLQuantizationType.F16:
            writer.add_tensor(gguf_name, data.astype(np.float16))
        else:
            writer.add_tensor(gguf_name, gguf.quants.quantize(data, stored), raw_dtype=stored)
        counts[stored.name] = counts.get(stored.name, 0) + 1
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return counts


def _types(gguf: Any, quant: str) -> tuple[Any, Any]:
    q, f = gguf.GGMLQuantizationType, gguf.LlamaFileType
    table = {"f32": (q.F32, f.ALL_F32), "f16": (q.F16, f.MOSTLY_F16), "bf16": (q.BF16, f.MOSTLY_BF16),
             "q8_0": (q.Q8_0, f.MOSTLY_Q8_0)}
    if quant not in table:
        raise ExportError(f"--quant {quant!r}: choose one of {', '.join(QUANTS)}")
    return table[quant]


def _permute(weights: np.ndarray, heads: int, head_dim: int) -> np.ndarray:
    """HF's rotate-half layout -> GGUF's interleaved pairs, per head (llama.cpp's `LlamaModel.permute`)."""
    return (weights.reshape(heads, 2, head_dim // 2, *weights.shape[1:]).swapaxes(1, 2).reshape(weights.shape))


def _write_metadata(writer: Any, config: Any, file_type: Any, name: str) -> None:
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    writer.add_name(Path(name).name or "model")
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(float(_rope_theta(config)))
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_vocab_size(config.vocab_size)
    writer.add_file_type(file_type)


def _rope_theta(config: Any) -> float:
    parameters = getattr(config, "rope_parameters", None) or {}  # transformers 5 keeps it here
    return parameters.get("rope_theta") or getattr(config, "rope_theta", None) or 10000.0


def _write_tokenizer(gguf: Any, writer: Any, tokenizer: Any, vocab_size: int) -> None:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    kind = type(backend.model).__name__ if backend is not None else type(tokenizer).__name__
    if kind != "BPE":
        raise ExportError(f"GGUF export writes byte-level BPE tokenizers; this one is {kind}: use --format hf")
    by_id = {index: token for token, index in tokenizer.get_vocab().items()}
    added = tokenizer.added_tokens_decoder  # id -> AddedToken
    tokens, types = [], []
    for index in range(vocab_size):
        token = by_id.get(index)
        if token is None:
            tokens.append(f"[PAD{index}]")
            types.append(gguf.TokenType.UNUSED)
        else:
            tokens.append(token)
            types.append(gguf.TokenType.NORMAL if index not in added else
                         gguf.TokenType.CONTROL if added[index].special else gguf.TokenType.USER_DEFINED)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(_pre_tokenizer(tokens))
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    with tempfile.TemporaryDirectory() as folder:  # SpecialVocab reads merges, ids and template from files
        tokenizer.save_pretrained(folder)
        special = gguf.SpecialVocab(folder, load_merges=True, n_vocab=len(tokens))
        if tokenizer.chat_template and not special.chat_template:
            special.chat_template = tokenizer.chat_template
        special.add_to_gguf(writer)


def _pre_tokenizer(tokens: list[str]) -> str:
    """llama.cpp's pre-tokenizer name, known by the vocabulary (as its converter knows them by a hash)."""
    digest = hashlib.sha256("\n".join(tokens).encode("utf-8")).hexdigest()
    return KNOWN_VOCABULARIES.get(digest, "default")
