"""Every table and figure the project publishes, built from files (run directories, sweep CSVs).

- `tables`: the Markdown table and mean/std helpers everything below shares;
- `runs`: finished run directories read into `RunResult`s and grouped by configuration;
- `results`: the results table, per-run CSV and accuracy-vs-parameters curve (`qtrain-report`), from
  run directories or the results.csv files kept from them;
- `comparison`: each configuration beside its controls (paired differences, bootstrap, Wilcoxon);
- `noise`: a noise sweep's table and plots (`qtrain-noise-sweep`, `qtrain-sweep-table`);
- `shipped`: the README's results table; `hardware`, `start`: the other tables under docs/results/
  (all three written by `qtrain-table`).

Nothing here trains or evaluates a model, so a figure is always one command away from its files.
"""
