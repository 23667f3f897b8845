#!/bin/sh
# The main job at its 10-epoch default, rerun from a clean export of 0241754 (PYTHONPATH=the export; issue 22), 3 seeds one after another, exactly as the README types it
# (torch's default threads) plus --seed and --run-dir, with the machine's load sampled every 30 s.
# Other jobs shared the machine, so each run was given priority over them (nice -n -10, root).
#   sh docs/results/main_job/run10.sh
cd "$(dirname "$0")/../../.." || exit 1
out=docs/results/main_job
export QTRAIN_DATA_DIR=${QTRAIN_DATA_DIR:-/work/shared/data}
(while :; do echo "$(date -u +%H:%M:%S) $(cat /proc/loadavg)"; sleep 30; done) > $out/e10f_load.log &
sampler=$!
for seed in 0 1 2; do
  nice -n -10 /usr/bin/time -v python scripts/train.py --seed $seed --run-dir $out/e10f_seed$seed \
    > $out/e10f_seed$seed.log 2> $out/e10f_seed$seed.time
done
kill $sampler
