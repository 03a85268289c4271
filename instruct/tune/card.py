"""What a tuned folder says about itself: a portable base identity and a model card (README.md).

peft writes a blank template card and an absolute cache path as the base; these replace both
with what another machine needs to reproduce or load the adapter: the base as the user named it
(with its hash), the data (each build manifest's id, sources and counts), the method, the
hyperparameters as run, and the eval results.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from instruct.io.shards import write_json
from instruct.tune.config import ONLINE_OBJECTIVES

BASE_FILE = "base_model.json"


def save_labelled(model: Any, folder: Path, base: dict[str, Any], **options: Any) -> None:
    """`save_pretrained` with the portable base name in a peft model's configs. A peft model saves no
    copy of the base embedding: instruct never resizes the vocabulary, and peft's check for a resized
    one looks the portable name up on a hub (offline: a warning on every save)."""
    adapters = getattr(model, "peft_config", {})
    for settings in adapters.values():
        settings.base_model_name_or_path = base["name_or_path"]
    model.save_pretrained(folder, **options, **({"save_embedding_layers": False} if adapters else {}))


def write_card(folder: Path, config: Any, result: Any, base: dict[str, Any]) -> None:
    """Write `base_model.json` and `README.md` (a model card with YAML metadata) into `folder`."""
    write_json(base, folder / BASE_FILE)
    prompts = config.rl.prompts if result.objective in ONLINE_OBJECTIVES else ""  # what PPO/GRPO sampled from
    paths = (config.data.path, config.data.eval_path, prompts)
    data = [data_source(path) for path in paths if path]
    (folder / "README.md").write_text(card_text(config, result, base, data), encoding="utf-8")


def data_source(path: str) -> dict[str, Any]:
    """A data path and, when it is a build's output, its manifest's id (SHA-256), sources and counts."""
    entry: dict[str, Any] = {"path": path}
    start = Path(path)
    for folder in (start, start.parent, start.parent.parent):
        manifest_path = folder / "manifest.json"
        if manifest_path.is_file():
            raw = manifest_path.read_bytes()
            manifest = json.loads(raw)
            counts = manifest.get("counts", {})
            entry.update({"manifest": str(manifest_path), "manifest_id": hashlib.sha256(raw).hexdigest()[:16],
                          "created": manifest.get("created"), "schema": manifest.get("schema"),
                          "written": counts.get("written", manifest.get("written")),
                          "sources": [i.get("path") for i in manifest.get("inputs", [])]
                          or [s.get("name") for s in manifest.get("sources", [])]})
            break
    return entry


def card_text(config: Any, result: Any, base: dict[str, Any], data: list[dict[str, Any]]) -> str:
    method = config.method
    hub_base = base.get("upstream") or base["name_or_path"]
    lines = ["---", f"base_model: {json.dumps(hub_base)}", "library_name: peft", f"tags: [instruct, {method.name}]",
             "---", "", f"# {Path(config.output).name}", "",
             f"Tuned with `instruct tune` ({method.name}, objective {result.objective}) for {result.steps} steps.", "",
             "## Base model", "", f"- name: `{base['name_or_path']}` ({base['kind']})",
             f"- sha256: `{base['sha256']}`"]
    if base.get("upstream"):
        lines.append(f"- quantised from: `{base['upstream']}` (the adapter trained on the dequantised GGUF)")
    lines += ["", "## Data", ""]
    for entry in data:
        described = f"- `{entry['path']}`"
        if "manifest_id" in entry:
            described += (f": build manifest `{entry['manifest_id']}` ({entry['created']}), {entry['written']} "
                          f"{entry['schema']} rows from {', '.join(map(str, entry['sources']))}")
        lines.append(described)
    lines += [f"- trained on {result.examples} examples, evaluated on {result.eval_examples}"
              + (f"; dropped {result.dropped}" if result.dropped else ""), "",
              "## Method and hyperparameters", "", "| key | value |", "| --- | --- |"]
    settings = {"method": method.name, "r": method.r, "alpha": method.alpha, "dropout": method.dropout,
                "target_modules": method.target_modules, "max_length": config.data.max_length,
                "template": result.template, "packing": result.packing,
                "trainable parameters": f"{result.trainable_parameters:,} of {result.total_parameters:,}"}
    settings.update({f"plan.{k}": v for k, v in (result.plan.get("resolved") or {}).items()})
    lines += [f"| {key} | `{value}` |" for key, value in settings.items()]
    lines += ["", "## Evaluation", "", "| metric | before | after |", "| --- | --- | --- |",
              f"| eval loss | {_fmt(result.initial_eval_loss)} | {_fmt(result.eval_loss)} |"]
    lines += [f"| {name} | {_fmt(result.initial_eval_metrics.get(name))} | {_fmt(value)} |"
              for name, value in (result.eval_metrics or {}).items()]
    lines += ["", f"Final train loss {_fmt(result.train_loss)}; {result.tokens_per_second:.0f} tokens/s.", ""]
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else ("n/a" if value is None else str(value))
