"""Where the runs of a batch execute: in this process, in a local process pool, or as Ray tasks.

Every executor calls :func:`execute` (generate, then score; or, for a finished run whose export settings
changed, mesh it again and score) once per run and hands each row to
``on_done`` as soon as the run ends. A failing run becomes a row with status ``error``; it never
stops the batch. Each run gets a fresh process (pool: ``max_tasks_per_child=1``; Ray:
``max_calls=1``), so its ``peak_memory_mb`` is its own, not the high-water mark of a reused worker.
"""

from __future__ import annotations

import multiprocessing
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace
from pathlib import Path

from uni3d.compare.results import error_row, ok_row
from uni3d.compare.spec import RunTask
from uni3d.errors import UserError

OnDone = Callable[[dict], None]
EVALUATION = "evaluation.json"


def execute(task: RunTask, threads: int | None = None) -> dict:
    """Generate and score one run here; returns its row. Never raises for a failing run."""
    import torch

    from uni3d.evaluate import evaluate_run
    from uni3d.generate import generate, reexport
    from uni3d.training import Interrupted

    if threads:
        torch.set_num_threads(threads)
    start = time.perf_counter()
    try:
        if task.reexport:  # the run's wall time stays the one of its training
            reexport(task.run_dir, task.config.export, task.config.formats)
            evaluation = evaluate_run(task.run_dir)
            return ok_row(task, evaluation)
        cfg = replace(task.config, overwrite=task.run_dir.exists(), progress=False)
        generate(cfg)
        evaluation = evaluate_run(task.run_dir, extra={"wall_seconds": round(time.perf_counter() - start, 2)})
    except Interrupted:  # SIGINT / SIGTERM: the batch is being stopped, not this run failing
        raise
    except Exception as exc:  # recorded in results.csv; the batch goes on
        return error_row(task, exc)
    return ok_row(task, evaluation)


def execute_packed(task: RunTask, threads: int | None = None) -> tuple[dict, dict[str, bytes]]:
    """:func:`execute` into a scratch directory; returns the row and the run's files, so that the
    driver writes them under its own OUT (Ray workers need not share a file system with it)."""
    with tempfile.TemporaryDirectory(prefix="uni3d-run-") as tmp:
        local = replace(task, config=replace(task.config, out=Path(tmp) / "run"))
        row = execute(local, threads)
        files = {p.name: p.read_bytes() for p in sorted(local.run_dir.glob("*")) if p.is_file()}
    row["run_dir"] = str(task.run_dir)
    return row, files


def unpack(task: RunTask, files: dict[str, bytes]) -> None:
    """Write a packed run into its directory, evaluation.json last (the finished marker)."""
    if task.run_dir.exists():
        shutil.rmtree(task.run_dir)
    task.run_dir.mkdir(parents=True)
    for name in sorted(files, key=lambda n: n == EVALUATION):
        (task.run_dir / name).write_bytes(files[name])


def run_inline(tasks: Sequence[RunTask], threads: int | None, on_done: OnDone) -> None:
    """One run after another in this process (debugging and tests; peak memory is the batch's)."""
    for task in tasks:
        on_done(execute(task, threads))


def run_local(tasks: Sequence[RunTask], workers: int, threads: int | None, on_done: OnDone, attempts: int = 2) -> None:
    """A pool of ``workers`` fresh ``spawn`` processes. If a worker dies (killed, out of memory),
    the pool is rebuilt and the runs it held are tried again, ``attempts`` times in all."""
    tries = dict.fromkeys(range(len(tasks)), 0)
    pending = list(range(len(tasks)))
    while pending:
        broken: list[int] = []
        fresh = {"max_tasks_per_child": 1} if sys.version_info >= (3, 11) else {}  # 3.10: workers are reused
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), **fresh) as pool:
            futures = {pool.submit(execute, tasks[i], threads): i for i in pending}
            for fut in as_completed(futures):
                i = futures[fut]
                try:
                    on_done(fut.result())
                except BrokenProcessPool:
                    broken.append(i)
                except Exception as exc:
                    on_done(error_row(tasks[i], exc))
        pending = []
        for i in broken:
            tries[i] += 1
            if tries[i] >= attempts:
                on_done(error_row(tasks[i], "worker process died (killed or out of memory)"))
            else:
                pending.append(i)


def run_ray(tasks: Sequence[RunTask], threads: int | None, on_done: OnDone, address: str | None = None) -> None:
    """Each run as a Ray task of ``threads`` CPUs on the cluster at ``address`` (default: a local Ray
    started here). The nodes need uni3d installed; the files come back to this machine."""
    try:
        import ray
    except ImportError:
        raise UserError("--executor ray needs Ray: pip install -c constraints.txt -e '.[ray]'") from None
    started = not ray.is_initialized()
    if started:
        try:
            if address:
                ray.init(address=address, log_to_driver=False)
            else:
                ray.init(include_dashboard=False, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise UserError(f"cannot reach the Ray cluster at {address}: {str(exc).splitlines()[0]}") from None
    try:
        remote = ray.remote(num_cpus=threads or 1, max_calls=1)(execute_packed)
        refs = {remote.remote(t, threads or 1): t for t in tasks}
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            task = refs[done[0]]
            try:
                row, files = ray.get(done[0])
            except Exception as exc:  # the task or its worker died
                on_done(error_row(task, exc))
                continue
            if row["status"] == "ok":
                unpack(task, files)
            on_done(row)
    finally:
        if started:
            ray.shutdown()
