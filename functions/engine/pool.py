"""A pool of single-threaded worker processes on this machine: what :meth:`Study.run` trains a grid on by
default when that pays (:func:`default_workers`).

For the small networks of these studies a second intra-op thread buys little (one Adam step of the cpu
network on 64 images: 1.36× faster on 2 threads than on 1; on 20 images 1.07×), while a second process
doubles the runs trained at once; one single-threaded process per core keeps every core busy.
:func:`run_tasks` keeps the same guarantees as training in-process: each run is claimed in the results
store just before its task is submitted (so a second process on the same grid trains other runs), rows
are appended by this process as tasks finish (so a stopped grid resumes where it stopped), with the
progress bar and the one log line per run; a worker that dies is replaced and its runs retried.
"""
from __future__ import annotations

import collections
import concurrent.futures
import multiprocessing
import multiprocessing.context
import os
import tempfile
import warnings
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Callable, Iterable

from .conditions import RunSpec
from .errors import ConfigError
from .progress import GridProgress
from .tasks import pack_context, plan_tasks, run_batch, set_torch_threads, worker_context

# Pending runs from which the default executor starts a pool. Starting the workers costs a fresh Python,
# torch and the data per worker (measured: 14 s until two spawned workers had imported the engine, on a
# 2-core machine also running two other grids), while one run of the cpu grid takes seconds (three
# learning rates, >= 500 steps each): below a handful of runs the other cores cannot win that back.
# What the pool gives on a whole grid: benchmarks/grid_speed.py --mode pool.
POOL_MIN_RUNS = 8
WORKERS_VARIABLE = "TL_STUDY_WORKERS"  # worker processes of the default executor; "1": train in-process
TASK_RETRIES = 2  # times a task is run again after its worker died (Dask: or after it raised)


def available_cores() -> int:
    """CPU cores this process may use (the affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def default_workers(n_runs: int, device: str) -> int:
    """Worker processes :meth:`Study.run` starts by default for ``n_runs`` pending runs; 1 = train in-process.

    In-process on a GPU (one device, one process), on a single core, and for fewer than
    :data:`POOL_MIN_RUNS` runs; otherwise one single-threaded worker per core (``$TL_STUDY_WORKERS``
    overrides the count), never more than there are runs.
    """
    setting = os.environ.get(WORKERS_VARIABLE, "").strip()
    if setting and not (setting.isdigit() and int(setting) >= 1):
        raise ConfigError(f"{WORKERS_VARIABLE}={setting!r} is not a number of worker processes (an integer >= 1; "
                          "1 trains in this process)")
    cores = int(setting) if setting else available_cores()
    if device != "cpu" or cores < 2 or n_runs < POOL_MIN_RUNS:
        return 1
    return min(cores, n_runs)


class _TrackedSpawn(multiprocessing.context.SpawnContext):
    """The spawn context, remembering the processes it starts (to stop them at once on an interrupt)."""

    def __init__(self):
        super().__init__()
        self.started: list[multiprocessing.process.BaseProcess] = []

    def Process(self, *args, **kwargs):  # noqa: N802 - the name concurrent.futures calls
        process = super().Process(*args, **kwargs)
        self.started.append(process)
        return process


class LocalPool:
    """Worker processes on this machine behind the study's executor protocol (``run_specs``).

    ``n_workers`` (default: one per core) spawned processes with ``torch_threads`` PyTorch threads each;
    started on first use, replaced when one dies, stopped by :meth:`close` (or the end of a ``with``
    block). ``fallback``: a study that cannot be shipped to another process (an object pickle cannot
    carry) trains in this process instead, with a warning; without it that is an error.
    """

    def __init__(self, n_workers: int | None = None, torch_threads: int = 1, fallback: bool = False):
        self.n_workers = n_workers or available_cores()
        self.torch_threads = torch_threads
        self.fallback = fallback
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        self._context: _TrackedSpawn | None = None

    def run_specs(self, study, todo: list[RunSpec], progress: bool = True,
                  repeats_per_task: int | None = None) -> int:
        """Train ``todo`` on the workers, storing rows as they arrive; the number of rows stored."""
        if not todo:
            return 0
        tasks = plan_tasks(study, todo, repeats_per_task)
        context = worker_context(study, todo)  # pretrains the sources here, once, if they are not saved
        try:
            key, blob = pack_context(context)
        except Exception as err:  # noqa: BLE001 - whatever pickle refuses, name it
            if not self.fallback:
                raise
            warnings.warn(f"training in this process: the study cannot be sent to worker processes "
                          f"({type(err).__name__}: {err})", RuntimeWarning, stacklevel=2)
            return study.run_here(todo, progress)
        handle, path = tempfile.mkstemp(prefix=f"tl-study-{key}-", suffix=".pkl")
        with os.fdopen(handle, "wb") as fh:
            fh.write(blob)
        try:
            return run_tasks(study, tasks, lambda batch: self._executor().submit(run_batch, key, batch, path),
                             self.where, progress, restart=self._restart,
                             n_workers=self.n_workers)
        except BaseException:
            self.close(kill=True)  # stopped early (interrupt, error): the workers stop now, not after their task
            raise
        finally:
            Path(path).unlink(missing_ok=True)

    @property
    def where(self) -> str:
        """Where this executor trains, for progress lines: ``2 worker processes``."""
        return f"{self.n_workers} worker processes"

    def worker_pids(self) -> list[int]:
        """Process ids of the live workers."""
        started = self._context.started if self._context else []
        return [p.pid for p in started if p.pid is not None and p.is_alive()]

    def _executor(self) -> concurrent.futures.ProcessPoolExecutor:
        if self._pool is None:
            # spawn: a forked child would inherit this process's OpenMP thread pool in an undefined state
            self._context = _TrackedSpawn()
            self._pool = concurrent.futures.ProcessPoolExecutor(
                self.n_workers, mp_context=self._context, initializer=set_torch_threads,
                initargs=(self.torch_threads,))
        return self._pool

    def _restart(self) -> None:
        """A worker died and took the pool down: the next submit starts a fresh one."""
        self.close(kill=True)

    def close(self, kill: bool = False) -> None:
        """Stop the workers: after their current tasks, or at once (``kill``)."""
        if self._pool is None:
            return
        pool, self._pool = self._pool, None
        if kill:
            for process in self._context.started:
                if process.is_alive():
                    process.kill()
        pool.shutdown(wait=not kill, cancel_futures=True)

    def __enter__(self) -> "LocalPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"LocalPool(n_workers={self.n_workers}, torch_threads={self.torch_threads})"


def claim_runs(study, batch: list[RunSpec]) -> list[RunSpec]:
    """The runs of ``batch`` this process claims: those not stored yet nor claimed by another live process."""
    return [s for s in batch if study.store.try_claim(s.key)]


def release_unstored(study, specs: Iterable[RunSpec]) -> None:
    """Give up this process's claims on the runs of ``specs`` that are not stored (another may take them)."""
    keys = [s.key for s in specs if s.key not in study.store]
    if keys:
        study.store.release(*keys)


def run_tasks(study, tasks: list[list[RunSpec]], submit: Callable, where: str, progress: bool = True,
              restart: Callable[[], None] | None = None, in_flight_per_worker: int = 2,
              n_workers: int | None = None) -> int:
    """Train ``tasks`` through ``submit(batch) -> Future`` (a ``concurrent.futures`` executor), claiming
    each batch's runs just before it is submitted and storing rows as tasks finish; rows stored.

    A few tasks per worker are in flight at a time, so the runs claimed are the runs being trained.
    When a worker dies (``BrokenProcessPool``), ``restart()`` (if given) replaces the pool and the tasks
    it held are submitted again, each at most :data:`TASK_RETRIES` times. A task that raises does not stop
    the others; every result that arrives is stored, then a RuntimeError names the failures.
    """
    window = in_flight_per_worker * (n_workers or available_cores())
    queue = collections.deque(tasks)
    in_flight: dict[concurrent.futures.Future, tuple[list[RunSpec], int]] = {}
    claimed: set[RunSpec] = set()  # every run this pass claimed: those not stored are released at the end
    retries: collections.Counter = collections.Counter()
    failures: list[tuple[list[RunSpec], BaseException]] = []
    generation = 0  # pools started: a broken pool is replaced once, whatever number of its tasks fail

    def replace_pool() -> None:
        nonlocal generation
        restart()
        generation += 1

    def submit_claimed(batch: list[RunSpec]) -> None:
        try:
            future = submit(batch)
        except BrokenProcessPool:  # a worker died since the last results came in
            if restart is None:
                raise
            replace_pool()
            future = submit(batch)
        in_flight[future] = (batch, generation)

    with GridProgress(study, [s for batch in tasks for s in batch], where, progress) as bar:
        try:
            while queue or in_flight:
                while queue and len(in_flight) < window:
                    batch = queue.popleft()
                    mine = claim_runs(study, batch)  # a batch submitted again holds its claims already
                    claimed.update(mine)
                    bar.skip([s for s in batch if s not in mine])  # stored or claimed by another process meanwhile
                    if mine:
                        submit_claimed(mine)
                if not in_flight:
                    break
                done, _ = concurrent.futures.wait(in_flight, return_when=concurrent.futures.FIRST_COMPLETED)
                for future in done:
                    batch, started_in = in_flight.pop(future)
                    died = isinstance(future.exception(), BrokenProcessPool)
                    if died and restart is not None and retries[batch[0].key] < TASK_RETRIES:
                        retries[batch[0].key] += 1
                        if started_in == generation:
                            replace_pool()
                        queue.appendleft(batch)  # still claimed by this process: submitted again first
                        continue
                    store_result(study, bar, future, batch, failures)
        finally:
            for future in in_flight:
                future.cancel()
            release_unstored(study, claimed)
    raise_failures(failures, len(tasks))
    return bar.appended


def store_result(study, bar: GridProgress, future, batch: list[RunSpec], failures: list) -> None:
    """Store the rows of a finished task; a task that raised is given up (its claims released) and
    added to ``failures``, to be reported once the others are stored."""
    try:
        rows = future.result()
    except Exception as err:  # noqa: BLE001 - keep the others' results, report at the end
        release_unstored(study, batch)
        failures.append((batch, err))
        bar.skip(batch)
        return
    for row in rows:
        bar.store(row)


def raise_failures(failures: list[tuple[list[RunSpec], BaseException]], n_tasks: int) -> None:
    """RuntimeError naming the failed tasks (chained to the first error); nothing when there are none."""
    if not failures:
        return
    names = ", ".join(f"{b[0].condition} f={b[0].fraction:g} k={b[0].cut} ({len(b)} runs)"
                      for b, _ in failures[:5]) + (", …" if len(failures) > 5 else "")
    first = failures[0][1]
    raise RuntimeError(f"{len(failures)} of {n_tasks} tasks failed ({names}): {type(first).__name__}: {first}; "
                       "their runs are not stored, rerun the grid to retry them") from first
