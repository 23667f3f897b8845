"""Where sweep cells run: in this process, in a local process pool, or on a Ray cluster.

Cells are independent and CPU-bound, so a pool of processes (not threads) is the unit of
parallelism; each process keeps its own caches (a loaded run, a device noise model) across the
cells it is given. With ``ray_address`` the same function runs as Ray tasks, so a sweep moves to
a cluster with one flag and no code change.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any, TypeVar

Task = TypeVar("Task")


def _limit_threads(threads: int) -> None:
    """Give each pool process its share of the cores (torch and Aer/OpenMP would each take all)."""
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)


def _run_local(fn: Callable[[Task], Any], tasks: list[Task], workers: int) -> Iterator[tuple[Task, Any]]:
    if workers == 1:
        for task in tasks:
            yield task, fn(task)
        return
    threads = max(1, (os.cpu_count() or 1) // workers)
    context = multiprocessing.get_context("spawn")  # fork would copy torch's and OpenMP's thread state
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_limit_threads, initargs=(threads,)) as pool:
        futures = {pool.submit(fn, task): task for task in tasks}
        try:
            for future in as_completed(futures):
                yield futures[future], future.result()
        finally:
            for future in futures:
                future.cancel()


def _run_ray(fn: Callable[[Task], Any], tasks: list[Task], address: str, workers: int) -> Iterator[tuple[Task, Any]]:
    """Ray tasks, one CPU each; ``address`` 'local' starts a single-node instance with ``workers`` CPUs."""
    import ray

    if not ray.is_initialized():
        if address == "local":
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=address, log_to_driver=False)
    remote = ray.remote(num_cpus=1)(fn)
    pending = {remote.remote(task): task for task in tasks}
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            task = pending.pop(done[0])
            yield task, ray.get(done[0])
    finally:
        for ref in pending:
            ray.cancel(ref)


def run_tasks(
    fn: Callable[[Task], Any], tasks: Iterable[Task], *, workers: int = 1, ray_address: str | None = None
) -> Iterator[tuple[Task, Any]]:
    """Yield (task, fn(task)) as tasks finish, in completion order.

    ``fn`` must be a module-level function (it is pickled to other processes). An exception in
    one task propagates when it is reached; results already yielded are the caller's to keep.
    """
    tasks = list(tasks)
    if ray_address:
        yield from _run_ray(fn, tasks, ray_address, workers)
    else:
        yield from _run_local(fn, tasks, workers)
