#!/usr/bin/env bash
# Preference alignment on real labeled text: Unicode names -> general category, the true category as
# chosen and a random wrong one as rejected. DPO with LoRA, then held-out preference accuracy of the
# base vs the tuned model; a reward model on the same pairs (held-out pairwise accuracy in result.json).
# Run from the repository root; writes out/unicode_align/.
set -euo pipefail
out=out/unicode_align
python examples/unicode_category/preference_pairs.py "$out"
instruct tune trainer/dpo.yaml --data "$out/train_pairs.jsonl" --output "$out/dpo" --max-steps 30 \
    train.lr=5e-4 train.micro_batch_tokens=1024 train.grad_accum=2 data.max_length=256 train.eval_every=100 \
    data.eval_fraction=0.02
instruct eval --pairs "$out/test_pairs.jsonl" --adapter "$out/dpo" --output "$out/eval_dpo" --limit 200
instruct tune trainer/reward.yaml --data "$out/train_pairs.jsonl" --output "$out/rm" --max-steps 30 \
    train.lr=5e-4 train.micro_batch_tokens=1024 train.grad_accum=2 data.max_length=256 train.eval_every=100 \
    data.eval_fraction=0.1
