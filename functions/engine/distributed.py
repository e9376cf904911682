"""Run a study grid on other processes or machines: a local process pool or a Dask cluster.

The grid runner (:meth:`functions.engine.study.Study.run`) takes an ``executor``. ``None`` trains in this
process; :func:`make_executor` gives a :class:`TaskExecutor` (the study's ``Executor`` protocol:
``run_specs``) over a Dask ``Client`` (a LocalCluster on this machine, or a scheduler somewhere else) or a
``concurrent.futures.ProcessPoolExecutor``, and :func:`as_executor` wraps one you made yourself;
:func:`run_with_executor` does the rest:

* **Tasks.** One task is one (condition, fraction, cut) with a small batch of its repeats: all repeats of
  a tiny fraction (where per-run overheads dominate) down to one repeat per task at full data; the
  batch shares one frozen-prefix cache.
* **Shipped once per worker.** The config (as JSON), the pretrained source networks and the conditions in
  play travel as one *worker context*: a Dask worker plugin (so workers that join or restart later get
  it too) or, for a process pool, a temporary file. Each worker process rebuilds the :class:`Study` from
  it once, reading the data from the data root *on that worker*, and keeps it for every later task,
  together with the frozen-prefix features of the validation and test splits per cut
  (:class:`SharedPrefixes`): a task computes the prefix of its own training rows only.
* **Results** come back to the client as tasks finish and are appended at once to the study's
  JSON-lines store there (idempotent per key: a retried task never duplicates a row). A worker killed
  mid-task: Dask reruns its task on another worker (and ``retries`` covers errors raised in a task). A
  client that crashes resumes like a local run: the rows already stored are skipped.
* **Determinism.** Seeds come from the run spec, not from the worker, so a run's row does not depend on
  where it ran (the tests compare every accuracy with the in-process path on digits).
"""
from __future__ import annotations

import concurrent.futures
import hashlib
import itertools
import json
import math
import os
import re
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
from distributed.diagnostics.plugin import WorkerPlugin
from tqdm.auto import tqdm

from .cache import PrefixCache, parts_nbytes, worth_caching
from .conditions import CONDITIONS, SOURCES, Condition, RunSpec
from .config import StudyConfig
from .networks import BlockNet, forward_flops, new_model
from .study import Study, log_run

KINDS = ("dask", "process", "local")
LOCAL_CLUSTER_NAMES = ("", "local", "local-cluster")
TASK_RETRIES = 2
_LOCAL_CLUSTER = re.compile(r"^(local|local-cluster)(?::(\d+))?$")


# ----------------------------------------------------------------------------- executors
class TaskExecutor:
    """A Dask ``Client`` or a ``concurrent.futures`` executor behind the study's executor protocol:
    ``Study.run(..., executor=this)`` calls :meth:`run_specs`.

    Everything else (``submit``, ``nthreads``, ``scheduler`` …) is the wrapped ``backend``'s; closing the
    executor (or leaving its ``with`` block) closes the client or shuts the pool down.
    """

    def __init__(self, backend: Any):
        self.backend = _backend(backend)

    def run_specs(self, study: Study, todo: list[RunSpec], progress: bool = True,
                  repeats_per_task: int | None = None) -> int:
        """Train ``todo`` on the backend, storing rows as they arrive; the number of rows stored."""
        return run_with_executor(study, todo, self.backend, progress, repeats_per_task)

    def close(self) -> None:
        if is_dask_client(self.backend):
            self.backend.close()
        else:
            self.backend.shutdown()

    def __enter__(self) -> "TaskExecutor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __getattr__(self, name: str) -> Any:
        if name == "backend":  # not set yet (e.g. while unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.backend, name)

    def __repr__(self) -> str:
        return f"TaskExecutor({self.backend!r})"


def as_executor(executor: Any) -> TaskExecutor | None:
    """``executor`` behind the study's executor protocol: None stays None (train in this process), an
    object with ``run_specs`` is returned as it is, a Dask ``Client`` or ``concurrent.futures`` executor
    is wrapped in a :class:`TaskExecutor`."""
    if executor is None or callable(getattr(executor, "run_specs", None)):
        return executor
    return TaskExecutor(executor)


def available_cores() -> int:
    """CPU cores this process may use (the affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def make_executor(scheduler_address: str | None = None, n_workers: int | None = None,
                  threads_per_worker: int = 1, kind: str = "dask", torch_threads: int | None = None,
                  **cluster_kwargs: Any):
    """An executor for :meth:`Study.run`: a :class:`TaskExecutor` over a Dask ``Client`` or a process pool,
    or None (in-process).

    ``kind="dask"``: ``scheduler_address`` empty, ``"local"`` or ``"local-cluster"`` (optionally
    ``":N"`` for N workers) starts a LocalCluster of ``n_workers`` processes × ``threads_per_worker``
    threads on this machine; closing the client stops it. ``"tcp://host:8786"`` (or ``host:port``)
    connects to a running ``dask scheduler``; a path ending in ``.json`` is read as a scheduler file.
    ``kind="process"``: a ``ProcessPoolExecutor`` of ``n_workers`` spawned processes. ``kind="local"``:
    None, i.e. train in this process.

    ``n_workers`` defaults to one per core. ``torch_threads`` (PyTorch threads per worker process)
    defaults, on this machine, to the cores left to each worker (at least 1); on a remote cluster it is
    left to the workers (Dask's nanny starts them with one thread: run one worker per core).
    ``cluster_kwargs`` go to ``LocalCluster`` (e.g. ``memory_limit``, ``dashboard_address``).
    """
    if kind not in KINDS:
        raise ValueError(f"kind {kind!r} is unknown; allowed: {list(KINDS)}")
    if scheduler_address is not None and not isinstance(scheduler_address, str):
        raise ValueError(f"scheduler_address must be a string or None, got {scheduler_address!r}")
    address = (scheduler_address or "").strip()
    match = _LOCAL_CLUSTER.match(address)
    if match and match.group(2):
        n_workers = int(match.group(2))
    for name, value in (("n_workers", n_workers), ("threads_per_worker", threads_per_worker),
                        ("torch_threads", torch_threads)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"{name} must be an integer >= 1 (or None), got {value!r}")
    if kind == "local":
        if address:
            raise ValueError(f"scheduler_address {address!r} needs kind='dask'; kind='local' runs here")
        return None
    local = address == "" or match is not None
    if n_workers is None:
        n_workers = max(1, available_cores() // threads_per_worker)
    if torch_threads is None and local:
        torch_threads = max(1, available_cores() // (n_workers * threads_per_worker))
    if kind == "process":
        if not local:
            raise ValueError(f"scheduler_address {address!r} needs kind='dask'; a process pool is local "
                             f"(allowed addresses: {list(LOCAL_CLUSTER_NAMES)})")
        import multiprocessing

        # spawn: a forked child would inherit this process's OpenMP thread pool in an undefined state
        spawn = multiprocessing.get_context("spawn")
        return TaskExecutor(concurrent.futures.ProcessPoolExecutor(
            n_workers, mp_context=spawn, initializer=_set_torch_threads, initargs=(torch_threads,)))
    return TaskExecutor(_dask_client(address if not local else None, n_workers, threads_per_worker, torch_threads,
                                 cluster_kwargs))


def _dask_client(address: str | None, n_workers: int, threads_per_worker: int, torch_threads: int | None,
                 cluster_kwargs: dict[str, Any]):
    """A Client of a new LocalCluster (``address`` None) or of a running scheduler."""
    from distributed import Client

    if address is None:
        cluster_kwargs.setdefault("processes", True)  # one Python process per worker: no GIL sharing
        cluster_kwargs.setdefault("dashboard_address", ":8787" if _has_bokeh() else None)
        client = Client(n_workers=n_workers, threads_per_worker=threads_per_worker, **cluster_kwargs)
    elif address.endswith(".json"):  # written by `dask scheduler --scheduler-file …` (e.g. under SLURM)
        path = Path(address).expanduser()
        if not path.exists():
            raise ValueError(f"scheduler_address {address!r}: no such scheduler file")
        client = Client(scheduler_file=str(path))
    elif re.match(r"^([a-z]+://)?[\w.\-\[\]:]+(:\d+)?$", address) and not address.startswith("local"):
        client = Client(address)
    else:
        raise ValueError(f"scheduler_address {address!r} is not understood; allowed: "
                         f"{list(LOCAL_CLUSTER_NAMES)} (LocalCluster), 'local-cluster:N', "
                         "'tcp://host:port', 'host:port' or a scheduler file '….json'")
    if torch_threads is not None:
        client.register_plugin(TorchThreads(torch_threads), name="tl-study-torch-threads")
    return client


def _has_bokeh() -> bool:
    """Whether Dask's dashboard can start (it needs bokeh, which is optional)."""
    try:
        import bokeh  # noqa: F401
    except ImportError:
        return False
    return True


def _set_torch_threads(n: int | None) -> None:
    if n:
        torch.set_num_threads(n)


class TorchThreads(WorkerPlugin):
    """Dask worker plugin: PyTorch threads per worker process (re-applied to restarted workers)."""

    idempotent = False

    def __init__(self, n: int):
        self.n = n

    def setup(self, worker) -> None:
        _set_torch_threads(self.n)


class StudyContext(WorkerPlugin):
    """Dask worker plugin carrying one worker context; the scheduler hands it to late-joining workers."""

    idempotent = True  # same content key → already there

    def __init__(self, key: str, blob: bytes):
        self.key, self.blob = key, blob

    def setup(self, worker) -> None:
        _CONTEXT_BLOBS[self.key] = self.blob  # built lazily by the first task: setup stays quick

    def teardown(self, worker) -> None:
        _CONTEXT_BLOBS.pop(self.key, None)
        with _STATE_LOCK:
            _STATES.pop(self.key, None)


def _task_name(key: str, batch: list[RunSpec]) -> str:
    """A readable Dask key, unique per batch: the same batch of the same context gets the same key, so a
    resumed client attaches to a task its crashed predecessor left running instead of starting another."""
    s = batch[0]
    members = hashlib.sha1("/".join(r.key for r in batch).encode()).hexdigest()[:6]
    return f"tl-run-{s.condition}-f{s.fraction:g}-k{s.cut}-r{s.repeat}-{batch[-1].repeat}-{members}-{key}"


# ----------------------------------------------------------------------------- the client side
def is_dask_client(executor: Any) -> bool:
    """Whether ``executor`` is a ``distributed.Client`` (without importing Dask otherwise)."""
    module = type(executor).__module__.split(".")[0]
    return module == "distributed" and hasattr(executor, "register_plugin")


def _backend(executor: Any):
    """The Dask Client or concurrent.futures executor behind ``executor`` (a :class:`TaskExecutor` or either)."""
    if isinstance(executor, TaskExecutor):
        return executor.backend
    if is_dask_client(executor) or isinstance(executor, concurrent.futures.Executor):
        return executor
    raise ValueError(f"executor must be a dask.distributed Client, a concurrent.futures.Executor or "
                     f"None, got {type(executor).__name__}")


def run_with_executor(study: Study, todo: list[RunSpec], executor, progress: bool = True,
                      repeats_per_task: int | None = None) -> int:
    """Run ``todo`` on ``executor`` (a :class:`TaskExecutor`, a Dask Client or a
    concurrent.futures.Executor), storing rows as they arrive.

    Returns the number of rows appended to ``study.store``. Failed tasks do not stop the others: every
    result that arrives is stored, then a RuntimeError names the failures (a rerun resumes them).
    """
    if not todo:
        return 0
    executor = _backend(executor)
    tasks = plan_tasks(study, todo, repeats_per_task)
    key, blob = pack_context(worker_context(study, todo))
    runner = _run_on_dask if is_dask_client(executor) else _run_on_pool
    return runner(study, tasks, executor, key, blob, progress)


def _progress_bar(study: Study, n_runs: int, where: str, progress: bool):
    return tqdm(total=n_runs, desc=f"{study.cfg.study_name()} on {where}", disable=not progress)


def _run_on_dask(study: Study, tasks: list[list[RunSpec]], client, key: str, blob: bytes,
                 progress: bool) -> int:
    """A Dask client: the context travels as a worker plugin, tasks are retried on errors."""
    from distributed import as_completed

    plugin_name = f"tl-study-context-{key}"
    client.register_plugin(StudyContext(key, blob), name=plugin_name)
    n_workers = len(client.nthreads())
    futures = {}
    for rank, batch in enumerate(tasks):  # most expensive first, so that no long task starts last
        future = client.submit(run_batch, key, batch, key=_task_name(key, batch),
                               priority=len(tasks) - rank, retries=TASK_RETRIES, pure=False)
        futures[future] = batch
    try:
        return _collect(study, futures, as_completed(futures), _progress_bar(
            study, sum(map(len, tasks)), f"{n_workers} Dask workers", progress))
    finally:
        client.cancel([f for f in futures if not f.done()])  # an interrupted client stops its work
        try:
            client.unregister_worker_plugin(plugin_name)
        except Exception:  # noqa: BLE001 - a cluster that went away has nothing left to free
            pass


def _run_on_pool(study: Study, tasks: list[list[RunSpec]], executor, key: str, blob: bytes,
                 progress: bool) -> int:
    """A concurrent.futures executor: the context travels as a file each process reads once."""
    handle, path = tempfile.mkstemp(prefix=f"tl-study-{key}-", suffix=".pkl")
    with os.fdopen(handle, "wb") as fh:
        fh.write(blob)
    futures = {executor.submit(run_batch, key, batch, path): batch for batch in tasks}
    where = f"{getattr(executor, '_max_workers', '?')} processes"
    try:
        return _collect(study, futures, concurrent.futures.as_completed(futures),
                        _progress_bar(study, sum(map(len, tasks)), where, progress))
    finally:
        for future in futures:
            future.cancel()
        Path(path).unlink(missing_ok=True)


def _collect(study: Study, futures: dict, finished: Iterable, bar) -> int:
    """Append every finished task's rows to the store; raise at the end if some tasks failed."""
    stored, failures, done = 0, [], 0
    try:
        for future in finished:
            batch = futures[future]
            try:
                rows = future.result()
            except Exception as err:  # noqa: BLE001 - keep the others' results, report below
                failures.append((batch, err))
                bar.update(len(batch))
                continue
            for row in rows:
                stored += study.store.append(row)  # False when the key was stored already (a retried task)
                done += 1
                log_run(done, bar.total, row)
            bar.update(len(rows))
            last = rows[-1]
            bar.set_postfix(cond=last["condition"], f=last["fraction"], k=last["cut"],
                            acc=f"{last['test_acc']:.3f}")
    finally:
        bar.close()
    if failures:
        names = ", ".join(f"{b[0].condition} f={b[0].fraction:g} k={b[0].cut} ({len(b)} runs)"
                          for b, _ in failures[:5]) + (", …" if len(failures) > 5 else "")
        raise RuntimeError(f"{len(failures)} of {len(futures)} tasks failed ({names}); their runs are not "
                           "stored, rerun the grid to retry them") from failures[0][1]
    return stored
