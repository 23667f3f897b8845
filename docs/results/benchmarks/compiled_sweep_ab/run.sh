#!/bin/bash
# alternate before/after suites twice; each from its own clean export (PYTHONPATH points at it)
for round in 1 2; do
  for side in before after; do
    cd /tmp/ab/$side
    echo "== $side round $round $(date +%H:%M:%S) load $(cut -d' ' -f1 /proc/loadavg)"
    PYTHONPATH=/tmp/ab/$side OMP_NUM_THREADS=1 python -c "import sys; sys.argv=['benchmark.py','--suite','--steps','30','--warmup','3','--threads','1','--no-cifar','--out','/tmp/ab/out_${side}_$round']; from qtrain_qiskit.commands.benchmark import cli; cli()" 
  done
done
