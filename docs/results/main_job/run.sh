#!/bin/sh
# The main job, 3 seeds side by side (2 shared cores: one torch thread each), with the machine's load
# sampled every 30 s. Each run: the README's first command plus --seed and --run-dir.
#   sh docs/results/main_job/run.sh
cd "$(dirname "$0")/../../.." || exit 1
out=docs/results/main_job
export QTRAIN_DATA_DIR=${QTRAIN_DATA_DIR:-/work/shared/data} OMP_NUM_THREADS=1
(while :; do echo "$(date -u +%H:%M:%S) $(cat /proc/loadavg)"; sleep 30; done) > $out/load.log &
sampler=$!
for seed in 0 1 2; do
  nice -n 10 /usr/bin/time -v python scripts/train.py --backend aer_statevector --seed $seed \
    --run-dir $out/seed$seed > $out/seed$seed.log 2> $out/seed$seed.time &
done
wait %2 %3 %4 2>/dev/null || wait
kill $sampler
