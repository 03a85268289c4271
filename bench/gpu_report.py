"""One table row per `instruct tune` run of bench/gpu_check.sh: tokens/s, peak GPU memory and MFU.

MFU = tokens/s x FLOPs per token / (GPUs x the GPU's dense bf16 peak). FLOPs per token: 6 N for
full fine-tuning (forward 2N, backward 4N), 4 N with a frozen base (no weight gradients), N the
parameter count; attention's own FLOPs are left out, so the figure is a slight underestimate.

    python bench/gpu_report.py NAME OUTPUT_DIR GPUS [--header]
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

# dense bf16 tensor-core peaks (vendor data sheets, TFLOPS); GPU_PEAK_TFLOPS overrides
PEAK_TFLOPS = {"H200": 989, "H100 SXM": 989, "H100 80GB HBM3": 989, "H100 PCIe": 756, "H100": 756, "A100": 312,
               "L40S": 362, "L4": 121, "A10G": 70, "A10": 125, "RTX 4090": 165, "V100": 125}


def peak_flops(name: str) -> float | None:
    if os.environ.get("GPU_PEAK_TFLOPS"):
        return float(os.environ["GPU_PEAK_TFLOPS"]) * 1e12
    found = next((tflops for key, tflops in PEAK_TFLOPS.items() if key in name), None)
    return found * 1e12 if found else None


def main() -> None:
    if "--header" in sys.argv:
        print("| run | GPUs | params | trainable | tokens/s | peak GPU MB (rank 0) | MFU | final loss |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- |")
        return
    import torch

    name, output, gpus = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    result = json.loads((output / "result.json").read_text())
    params, trainable = result["total_parameters"], result["trainable_parameters"]
    per_token = (6 if trainable >= 0.5 * params else 4) * params
    peak = peak_flops(torch.cuda.get_device_name(0))
    mfu = f"{result['tokens_per_second'] * per_token / (gpus * peak):.1%}" if peak else "n/a (set GPU_PEAK_TFLOPS)"
    memory = result.get("peak_device_mb")
    print(f"| {name} | {gpus} | {params / 1e6:,.0f} M | {trainable / 1e6:,.1f} M | {result['tokens_per_second']:,.0f} | "
          f"{memory:,.0f} | {mfu} | {result['train_loss']:.4f} |" if memory is not None else
          f"| {name} | {gpus} | ... | ... | ... | no GPU memory recorded | ... | ... |")


if __name__ == "__main__":
    main()
