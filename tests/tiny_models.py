"""A tiny randomly initialised Llama with the embedded SmolLM2 tokenizer, saved as an HF folder:
real forward passes in milliseconds, for tests whose behaviour does not need trained weights."""
from __future__ import annotations

from pathlib import Path


def save_tiny_llama(folder: Path, seed: int = 0, tied: bool = True) -> Path:
    """Tied embeddings make a random model echo its last token; untie them for answers that vary."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from instruct.models import resolve_model

    tokenizer = AutoTokenizer.from_pretrained(resolve_model())
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=tied)
    model = LlamaForCausalLM(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def save_random_lora(model_folder: Path, folder: Path, seed: int) -> Path:
    """A LoRA adapter with random (non-zero) weights: it changes the model's answers."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(model_folder)
    adapted = get_peft_model(model, LoraConfig(r=8, lora_alpha=64, target_modules=["q_proj", "v_proj", "down_proj"],
                                               init_lora_weights=False))
    adapted.save_pretrained(folder)
    return folder
