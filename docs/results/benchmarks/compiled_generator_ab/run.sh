#!/bin/bash
# Before (8ef0a15, the previous session's end) and after (this session's HEAD) suites with --parts,
# alternated twice, each from a clean export of its commit. The exports carry a link
# qtrain_qiskit/backends -> ../backends: without it the editable install resolves
# qtrain_qiskit.backends to the working tree's backends/ for both sides.
#   git archive 8ef0a15 | tar -x -C /tmp/ab/before; git archive <after> | tar -x -C /tmp/ab/after
#   ln -s ../backends /tmp/ab/<side>/qtrain_qiskit/backends
out=${OUT:-/tmp/ab}
for round in 1 2 3; do
  for side in before after; do
    cd /tmp/ab/$side || exit 1
    echo "== $side round $round $(date -u +%H:%M:%S) load $(cut -d' ' -f1 /proc/loadavg)"
    PYTHONPATH=/tmp/ab/$side OMP_NUM_THREADS=1 python -c "import sys; sys.argv=['benchmark.py','--suite','--parts','--steps','30','--warmup','3','--threads','1','--no-cifar','--out','$out/out_${side}_$round']; from qtrain_qiskit.commands.benchmark import cli; cli()"
  done
done
echo "== end $(date -u +%H:%M:%S) load $(cut -d' ' -f1 /proc/loadavg)"
