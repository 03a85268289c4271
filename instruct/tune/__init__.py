"""`instruct tune`: LoRA/QLoRA/full fine-tuning on EXAMPLE shards (SFT), DOCUMENT shards (continued pre-training) or a mix.

Python API:
    from instruct.tune import load_config, train, load_model
    result = train(load_config("trainer/lora.yaml", ["train.max_steps=50"], {"data.path": "shards/", "output": "out"}))
    model, tokenizer = load_model(adapter="out")   # base + adapter, ready for generate()
"""
from instruct.tune.config import (
           DataConfig,
           MethodConfig,
           TrainConfig,
           TuneConfig,
           load_config,
)
from instruct.tune.loop import evaluate, train
from instruct.tune.methods import load_base, load_model, merge_adapter
from instruct.tune.training import TrainResult, prepare_data

__all__ = ["DataConfig", "MethodConfig", "TrainConfig", "TuneConfig", "TrainResult", "load_config", "train",
           "evaluate", "prepare_data", "load_model", "load_base", "merge_adapter"]
