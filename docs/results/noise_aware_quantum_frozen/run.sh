#!/bin/bash
cd /work/main
export QTRAIN_DATA_DIR=/work/shared/data OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
D=docs/results/noise_aware_quantum_frozen/runs
E=docs/results/noise_aware_quantum_frozen/eval_noise.jsonl
for s in 0 1; do python scripts/train.py --resume $D/seed$s >> /work/logs/frozen_seed$s.log 2>&1; done
python scripts/evaluate_devices.py $E $D/seed0 $D/seed1 --devices fake_torino,fake_sherbrooke > /work/logs/frozen_eval.log 2>&1
python scripts/train.py --config configs/mnist_quantum.yaml --quantum frozen --seed 2 --run-dir $D/seed2 > /work/logs/frozen_seed2.log 2>&1
python scripts/evaluate_devices.py $E $D/seed2 --devices fake_torino,fake_sherbrooke >> /work/logs/frozen_eval.log 2>&1
echo done > /work/logs/frozen.done
