#!/bin/bash
# The noise-aware frozen-circuit control of configs/mnist_quantum.yaml (torch_density, fake_torino,
# float64 as pinned there), 3 seeds, then read on fake_torino and fake_sherbrooke at 8,192 shots.
# Seeds 0 and 1 were started earlier and resumed (--resume RUN) after their first epoch.
D=docs/results/noise_aware_quantum_frozen/runs
for s in 0 1 2; do
  python scripts/train.py --config configs/mnist_quantum.yaml --quantum frozen --seed $s --run-dir $D/seed$s
done
python scripts/evaluate_devices.py docs/results/noise_aware_quantum_frozen/eval_noise.jsonl $D/seed0 $D/seed1 $D/seed2 \
    --devices fake_torino,fake_sherbrooke
