#!/bin/bash
# The whole suite with --parts, CIFAR pair and peak memory included, before (8ef0a15) and after
# (the commit in /tmp/ab/after_commit), alternated twice, each from a clean export of its commit
# with the link qtrain_qiskit/backends -> ../backends (see run.sh).
out=${OUT:-/tmp/ab}
for round in 1 2 3; do
  for side in before after; do
    cd /tmp/ab/$side || exit 1
    echo "== $side round $round $(date -u +%H:%M:%S) load $(cut -d' ' -f1 /proc/loadavg)"
    PYTHONPATH=/tmp/ab/$side OMP_NUM_THREADS=1 python -c "import sys; sys.argv=['benchmark.py','--suite','--parts','--steps','30','--warmup','3','--threads','1','--out','$out/full_${side}_$round']; from qtrain_qiskit.commands.benchmark import cli; cli()"
  done
done
echo "== end $(date -u +%H:%M:%S) load $(cut -d' ' -f1 /proc/loadavg)"
