#!/usr/bin/env bash
# End to end on CPU: a real labeled dataset -> templated, decontaminated splits -> LoRA -> eval.
# Run from the repository root; writes out/unicode/. About 20-30 minutes on 2 busy cores.
# 30 steps of ~15 examples = ~450 of the 1,040 decontaminated training examples.
set -euo pipefail
export INSTRUCT_NO_PROGRESS=${INSTRUCT_NO_PROGRESS:-0}
data=data/generated/unicode_category
python -m instruct.labeled_samples --output "$data"
instruct build examples/unicode_category/train.yaml --output out/unicode/train
instruct build examples/unicode_category/heldout.yaml --input "$data/validation.jsonl" --output out/unicode/validation
instruct build examples/unicode_category/heldout.yaml --input "$data/test.jsonl" --output out/unicode/test
instruct tune trainer/lora.yaml --data out/unicode/train --output out/unicode/adapter --max-steps 30 \
    train.lr=1e-3 train.micro_batch_tokens=1024 train.grad_accum=1 train.eval_every=10 train.save_every=10 \
    data.eval_path=out/unicode/validation data.max_eval_examples=60 data.max_length=512
instruct eval --data out/unicode/test --adapter out/unicode/adapter --output out/unicode/eval
