#!/bin/bash
# Probe beyond the map: mnist_quantum with a mapping of width 8 (k = 16, 8 blocks), trained through
# fake_torino's noise (float32), beside its noise-aware frozen circuit and its random-vector and
# classical-generator controls (which run no circuit: trained under shots as the map trains them),
# then the two circuits read on fake_torino and fake_sherbrooke at 8,192 shots. Seeds 0, 1, 2.
D=docs/results/probe_h8/runs
for s in 0 1 2; do
  python scripts/train.py --config configs/mnist_quantum.yaml --hidden 8 --density-precision float32 --seed $s --run-dir $D/trained_seed$s
  python scripts/train.py --config configs/mnist_quantum.yaml --hidden 8 --density-precision float32 --seed $s --quantum frozen --run-dir $D/frozen_seed$s
  python scripts/evaluate_devices.py docs/results/probe_h8/eval_noise.jsonl $D/trained_seed$s $D/frozen_seed$s --devices fake_torino,fake_sherbrooke
  for v in random_vector classical_generator; do
    python scripts/train.py --config configs/mnist_quantum.yaml --hidden 8 --backend torch_statevector --seed $s --quantum $v --run-dir $D/${v}_seed$s
  done
done
