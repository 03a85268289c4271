"""Which weights train, and loading a (base model, adapter) pair: one function for tune, eval and serving.

PEFT methods (LoRA, DoRA, rsLoRA, QLoRA, AdaLoRA, LoRA+, PiSSA/OLoRA, prompt/prefix/P-tuning, IA3)
go through peft, so the saved adapter is a plain peft folder. Bottleneck adapters (Houlsby,
Pfeiffer, parallel) and UniPELT are our own modules (`instruct.tune.bottleneck`: the `adapters`
library pins transformers 4) with a folder of their own. Full, freeze (top k layers) and BitFit
train the model's own weights and save a whole model folder.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from instruct.base_model import verify_base
from instruct.config import ConfigError
from instruct.models import resolve_model
from instruct.tune import bottleneck
from instruct.tune.activations import slim_activations
from instruct.tune.config import (
    BOTTLENECK_ADAPTERS,
    LORA_FAMILY,
    PEFT_ADAPTERS,
    MethodConfig,
)
from instruct.tune.layers import decoder_layers


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
              double_quant: bool = True, attn_implementation: str = "sdpa", device: torch.device | None = None,
              scalar_head: bool = False) -> tuple[nn.Module, Any]:
    """A causal LM and its tokenizer from a local folder or GGUF (None: the embedded default).

    `scalar_head`: the same body with a one-output score head instead (a reward model), as
    transformers' AutoModelForSequenceClassification builds it.
    """
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    folder = resolve_model(model)
    device = device or default_device()
    kwargs: dict[str, Any] = {"dtype": dtype, "attn_implementation": attn_implementation}
    if scalar_head:
        kwargs["num_labels"] = 1
    if quantize_4bit:
        _require_bitsandbytes()
        kwargs["quantization_config"] = quantization_config(dtype, double_quant)
        kwargs["device_map"] = {"": device}
    loaded = (AutoModelForSequenceClassification if scalar_head else AutoModelForCausalLM).from_pretrained(folder, **kwargs)
    if not quantize_4bit:
        loaded.to(device)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if scalar_head and loaded.config.pad_token_id is None:
        loaded.config.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return loaded, tokenizer


def _require_bitsandbytes() -> None:
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise ConfigError("method qlora needs bitsandbytes: pip install bitsandbytes") from None


def apply_method(model: nn.Module, method: MethodConfig, grad_checkpointing: bool = False,
                 total_steps: int | None = None, task_type: str = "CAUSAL_LM") -> nn.Module:
    """Make the chosen parameters trainable (wrapping in peft where the method is an adapter), with the
    decoder layers' saved activations slimmed (activations.py: same numbers, less memory under autocast).

    `total_steps` is the length of the run: AdaLoRA's rank budget schedule is planned over it.
    `task_type` SEQ_CLS (reward models) makes peft train and save the score head beside the adapter.
    """
    model = _make_trainable(model, method, grad_checkpointing, total_steps, task_type)
    slim_activations(model)
    return model


def _make_trainable(model: nn.Module, method: MethodConfig, grad_checkpointing: bool, total_steps: int | None,
                    task_type: str) -> nn.Module:
    if method.name == "qlora":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=grad_checkpointing,
                                                gradient_checkpointing_kwargs={"use_reentrant": False})
        keep_4bit_differentiable(model)
    if grad_checkpointing:
        enable_checkpointing(model)
    if method.name in PEFT_ADAPTERS:
        from peft import get_peft_model

        model = get_peft_model(model, peft_config(method, model, total_steps, task_type))
        for parameter in model.parameters():  # adapters train in fp32 even over a bf16 base
            if parameter.requires_grad and parameter.dtype != torch.float32:
                parameter.data = parameter.data.float()
        return model
    if method.name in BOTTLENECK_ADAPTERS:
        return bottleneck.inject(model, method)
    for parameter in model.parameters():
        parameter.requires_grad_(method.name == "full")
    if method.name == "freeze":
        unfreeze_top_layers(model, method.trainable_layers)
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


def keep_4bit_differentiable(model: nn.Module) -> None:
    """Stop bitsandbytes repacking 4-bit weights for its CPU inference kernel during a training run.

    On an AVX512-BF16 CPU, a Linear4bit forward in eval mode (the run's held-out eval, PPO's sampling)
    repacks the weight for `gemv_4bit` and keeps it so; back in train mode every matmul then runs that
    kernel, which has no autograd formula, so the gradient through each frozen 4-bit weight is silently
    wrong (QLoRA learnt almost nothing after the first eval). The plain 4-bit matmul is differentiable.
    """
    for module in model.modules():
        if hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False


def enable_checkpointing(model: nn.Module) -> None:
    """Activation checkpointing of every decoder layer, non-reentrant (transformers 5 renamed the switch)."""
    enable = getattr(model, "activation_checkpointing_enable", None)
    if enable is not None:
        enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def unfreeze_top_layers(model: nn.Module, count: int) -> None:
    """Make the top `count` decoder blocks and the final norm trainable (freeze; unfreezing schedules)."""
    layers = decoder_layers(model)
    if count > len(layers):
        raise ConfigError(f"method.trainable_layers: the model has only {len(layers)} layers")
    top = list(layers)[len(layers) - count:]
    for module in top + [m for n, m in model.named_modules() if n.endswith("model.norm")]:
        module.requires_grad_(True)


def lora_init(method: MethodConfig) -> bool | str:
    """peft's `init_lora_weights`: PiSSA for `pissa`, else what `method.init_lora_weights` names."""
    if method.name == "pissa" and method.init_lora_weights == "default":
        return "pissa"
    return True if method.init_lora_weights == "default" else method.init_lora_weights


def peft_config(method: MethodConfig, model: nn.Module, total_steps: int | None = None,
                task_type: str = "CAUSAL_LM") -> Any:
    import peft

    if method.name in LORA_FAMILY:
        return peft.LoraConfig(r=method.r, lora_alpha=method.alpha, lora_dropout=method.dropout,
                               target_modules=method.target_modules, use_dora=method.name == "dora",
                               use_rslora=method.name == "rslora", init_lora_weights=lora_init(method),
                               task_type=task_type)
    if method.name == "adalora":  # the planned run length replaces this provisional total_step (method_hooks)
        return peft.AdaLoraConfig(init_r=method.r, target_r=method.target_r, lora_alpha=method.alpha,
                                  lora_dropout=method.dropout, target_modules=method.target_modules,
                                  tinit=method.tinit, tfinal=method.tfinal, deltaT=method.delta_t,
                                  total_step=total_steps or method.tinit + method.tfinal + 1, task_type=task_type)
    if method.name == "ia3":
        targets = None if method.target_modules == "all-linear" else method.target_modules
        return peft.IA3Config(target_modules=targets, task_type=task_type)
    if method.name == "prefix_tuning":
        return peft.PrefixTuningConfig(num_virtual_tokens=method.num_virtual_tokens, task_type="CAUSAL_LM",
                                       prefix_projection=method.prefix_projection,
                                       encoder_hidden_size=method.encoder_hidden_size)
    if method.name == "p_tuning":
        return peft.PromptEncoderConfig(num_virtual_tokens=method.num_virtual_tokens, task_type="CAUSAL_LM",
                                        encoder_hidden_size=method.encoder_hidden_size)
    init = {}
    if method.prompt_init_text:
        init = {"prompt_tuning_init": peft.PromptTuningInit.TEXT, "prompt_tuning_init_text": method.prompt_init_text,
                "tokenizer_name_or_path": str(model.config._name_or_path)}
    return peft.PromptTuningConfig(num_virtual_tokens=method.num_virtual_tokens, task_type="CAUSAL_LM", **init)


def parameter_groups(model: nn.Module, method: MethodConfig, lr: float) -> list[dict[str, Any]]:
    """Optimizer groups: one at `lr`, except LoRA+, whose B matrices learn `lora_plus_ratio` times faster."""
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if method.name != "lora_plus":
        return [{"params": [p for _, p in trainable], "lr": lr}]
    fast = [p for n, p in trainable if "lora_B" in n or "lora_embedding_B" in n]
    slow = [p for n, p in trainable if not ("lora_B" in n or "lora_embedding_B" in n)]
    return [{"params": slow, "lr": lr}, {"params": fast, "lr": lr * method.lora_plus_ratio}]


def trainable_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters())


# --- saving and loading -------------------------------------------------------------------------

def is_adapter(folder: str | Path) -> bool:
    """A folder holding an adapter (peft's or a bottleneck adapter) rather than a whole model."""
    return (Path(folder) / "adapter_config.json").is_file() or bottleneck.is_bottleneck(folder)


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
    if adapter is not None and bottleneck.is_bottleneck(adapter):
        return bottleneck.load(adapter, model, lambda base: load_base(
            base, dtype=torch_dtype, device=device, attn_implementation=attn_implementation))
    settings = _adapter_settings(adapter) if adapter is not None else {}
    base = model if model is not None else settings.get("base_model_name_or_path")
    if model is None and base is not None:
        verify_base(adapter, base)
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


def merged_model(adapter: str | Path, model: str | Path | None = None) -> tuple[nn.Module, Any]:
    """(model, tokenizer) with the adapter folded into its base, in fp32.

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
    return merged, tokenizer


def merge_adapter(adapter: str | Path, target: str | Path, model: str | Path | None = None) -> Path:
    """Fold an adapter into its base and save a plain model folder (see `merged_model`)."""
    from instruct.io.shards import atomic_dir

    merged, tokenizer = merged_model(adapter, model)
    with atomic_dir(target) as staging:  # a kill mid-save leaves the previous merge (or none), never half of one
        merged.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
    return Path(target)
