"""Experiment sweeps: grids of cells run in parallel, results appended as they finish.

`results` holds the append-only CSV that makes a sweep resumable, `executor` runs cells in a local
process pool or on a Ray cluster, `noise` defines the noise-robustness experiment and `plots` draws
its figures.
"""
