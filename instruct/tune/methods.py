"""Which weights train, and loading a (base model, adapter) pair: one function for tune, eval and serving.

PEFT methods (LoRA, DoRA, rsLoRA, QLoRA, prompt/prefix tuning, IA3) go through peft, so the saved
adapter is a plain peft folder. Full, freeze (top k layers) and BitFit train the model's own
weights and save a whole model folder.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from instruct.config import ConfigError
from instruct.models import resolve_model
from instruct.tune.config import MethodConfig, PEFT_ADAPTERS


def compute_dtype(setting: str = "auto") -> torch.dtype:
    """Weights dtype for loading a model to run it: bf16 on bf16 GPUs, else fp32 (training picks its autocast
    dtype in precision.training_dtype, bf16 on AVX512-BF16/AMX CPUs too)."""
    if setting == "bf16":
        return torch.bfloat16
    if setting == "auto" and torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def default_device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")


def quantization_config(dtype: torch.dtype, double_quant: bool = True) -> Any:
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=double_quant,
                              bnb_4bit_compute_dtype=dtype)


def load_base(model: str | Path | None, *, dtype: torch.dtype = torch.float32, quantize_4bit: bool = False,
              double_quant: bool = True, attn_implementation: str = "sdpa", device: torch.device | None = None
              ) -> tuple[nn.Module, Any]:
    """A causal LM and its tokenizer from a local folder or GGUF (None: the embedded default)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = resolve_model(model)
    device = device or default_device()
    kwargs: dict[str, Any] = {"dtype": dtype, "attn_implementation": attn_implementation}
    if quantize_4bit:
        _require_bitsandbytes()
        kwargs["quantization_config"] = quantization_config(dtype, double_quant)
        kwargs["device_map"] = {"": device}
    loaded = AutoModelForCausalLM.from_pretrained(folder, **kwargs)
    if not quantize_4bit:
        loaded.to(device)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    return loaded, tokenizer


def _require_bitsandbytes() -> None:
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise ConfigError("method qlora needs bitsandbytes: pip install bitsandbytes") from None


def apply_method(model: nn.Module, method: MethodConfig, grad_checkpointing: bool = False) -> nn.Module:
    """Make the chosen parameters trainable (wrapping in peft where the method is an adapter)."""
    if method.name == "qlora":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=grad_checkpointing,
                                                gradient_checkpointing_kwargs={"use_reentrant": False})
    if grad_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if method.name in PEFT_ADAPTERS:
        from peft import get_peft_model

        model = get_peft_model(model, peft_config(method, model))
        for parameter in model.parameters():  # adapters train in fp32 even over a bf16 base
            if parameter.requires_grad and parameter.dtype != torch.float32:
                parameter.data = parameter.data.float()
        return model
    for parameter in model.parameters():
        parameter.requires_grad_(method.name == "full")
    if method.name == "freeze":
        layers = decoder_layers(model)
        if method.trainable_layers > len(layers):
            raise ConfigError(f"method.trainable_layers: the model has only {len(layers)} layers")
        top = list(layers)[len(layers) - method.trainable_layers:]
        for module in top + [m for n, m in model.named_modules() if n.endswith("model.norm")]:
            module.requires_grad_(True)
    elif method.name == "bitfit":
        for name, parameter in model.named_parameters():
            if name.endswith(".bias"):
                parameter.requires_grad_(True)
        if method.include_norms:
            for module in model.modules():
                if "norm" in type(module).__name__.lower():
                    module.requires_grad_(True)
    if not any(p.requires_grad for p in model.parameters()):
        hint = " (this model has no bias terms: set method.include_norms=true or use ia3)" if method.name == "bitfit" else ""
        raise ConfigError(f"method {method.name}: no trainable parameters{hint}")
    return model


def peft_config(method: MethodConfig, model: nn.Module) -> Any:
    import peft

    if method.name in ("lora", "dora", "rslora", "qlora"):
        return peft.LoraConfig(r=method.r, lora_alpha=method.alpha, lora_dropout=method.dropout,
                               target_modules=method.target_modules, use_dora=method.name == "dora",
                               use_rslora=method.name == "rslora", init_lora_weights=True, task_type="CAUSAL_LM")
    if method.name == "ia3":
        targets = None if method.target_modules == "all-linear" else method.target_modules
        return peft.IA3Config(target_modules=targets, task_type="CAUSAL_LM")
    if method.name == "prefix_tuning":
        return peft.PrefixTuningConfig(num_virtual_tokens=method.num_virtual_tokens, task_type="CAUSAL_LM")
    init = {}
    if method.prompt_init_text:
        init = {"prompt_tuning_init": peft.PromptTuningInit.TEXT, "prompt_tuning_init_text": method.prompt_init_text,
                "tokenizer_name_or_path": str(model.config._name_or_path)}
    return peft.PromptTuningConfig(num_virtual_tokens=method.num_virtual_tokens, task_type="CAUSAL_LM", **init)


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The stack of transformer blocks: the longest ModuleList in the model."""
    lists = [m for m in model.modules() if isinstance(m, nn.ModuleList)]
    if not lists:
        raise ConfigError("method freeze: cannot find the decoder layers of this model")
    return max(lists, key=len)


def trainable_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters())


# --- saving and loading -------------------------------------------------------------------------

def is_adapter(folder: str | Path) -> bool:
    return (Path(folder) / "adapter_config.json").is_file()


def load_model(model: str | Path | None = None, adapter: str | Path | None = None, *, dtype: str = "auto",
               quantize_4bit: bool | None = None, device: torch.device | None = None,
               attn_implementation: str = "sdpa") -> tuple[nn.Module, Any]:
    """(model, tokenizer) for inference: a base model, optionally with a tuned adapter or a tuned full model.

    `adapter` is what `instruct tune` wrote: a peft adapter folder (its base comes from
    `model`, else from the adapter's `base_model_name_or_path`) or a whole model folder
    (full/freeze/BitFit). The tokenizer (with the chat template used in training) comes from
    the tuned folder when it has one. QLoRA adapters load on a 4-bit base unless told otherwise.
    """
    from transformers import AutoTokenizer

    torch_dtype = compute_dtype(dtype)
    if adapter is not None and not is_adapter(adapter):
        loaded, tokenizer = load_base(adapter, dtype=torch_dtype, device=device, attn_implementation=attn_implementation)
        return loaded.eval(), tokenizer
    settings = _adapter_settings(adapter) if adapter is not None else {}
    base = model if model is not None else settings.get("base_model_name_or_path")
    quantize = settings.get("method") == "qlora" if quantize_4bit is None else quantize_4bit
    loaded, tokenizer = load_base(base, dtype=torch_dtype, quantize_4bit=quantize, device=device,
                                  attn_implementation=attn_implementation)
    if adapter is None:
        return loaded.eval(), tokenizer
    from peft import PeftModel

    loaded = PeftModel.from_pretrained(loaded, str(adapter))
    if (Path(adapter) / "tokenizer_config.json").is_file():
        tokenizer = AutoTokenizer.from_pretrained(adapter)
    return loaded.eval(), tokenizer


def _adapter_settings(adapter: str | Path) -> dict[str, Any]:
    settings = json.loads((Path(adapter) / "adapter_config.json").read_text())
    recipe = Path(adapter) / "tune_config.json"
    if recipe.is_file():
        settings["method"] = json.loads(recipe.read_text())["method"]["name"]
    return settings


def merge_adapter(adapter: str | Path, target: str | Path, model: str | Path | None = None) -> Path:
    """Fold an adapter into its base and save a plain model folder.

    After QLoRA the base is loaded in 4-bit exactly as in training, then dequantised to fp32,
    and only then merged, so the merged weights are the function that was trained.
    """
    settings = _adapter_settings(adapter)
    quantized = settings.get("method") == "qlora"
    base, tokenizer = load_model(model if model is not None else settings.get("base_model_name_or_path"),
                                 dtype="fp32", quantize_4bit=quantized)
    if quantized:
        base = base.dequantize(dtype=torch.float32)
    from peft import PeftModel

    merged = PeftModel.from_pretrained(base, str(adapter)).merge_and_unload()
    if (Path(adapter) / "tokenizer_config.json").is_file():
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(adapter)
    target = Path(target)
    merged.save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target
