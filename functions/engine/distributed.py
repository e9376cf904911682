"""Run a study grid on a Dask cluster (a LocalCluster on this machine, or a lab's scheduler) or on an
executor you made yourself.

:meth:`functions.engine.study.Study.run` takes an ``executor``: None (the default) trains on a local pool of
single-threaded worker processes when that pays and in the grid's own process otherwise, ``"inprocess"``
always there (:mod:`.pool`). :func:`make_executor` gives a :class:`TaskExecutor` (the study's ``Executor``
protocol: ``run_specs``) over a Dask ``Client``, or a :class:`~functions.engine.pool.LocalPool`;
:func:`as_executor` wraps a Dask ``Client`` or ``concurrent.futures`` executor you made yourself;
:func:`run_with_executor` does the rest. How runs become tasks and what a worker keeps: :mod:`.tasks`.

* **Shipped once per worker.** The worker context (config, pretrained sources, conditions in play)
  travels as a Dask worker plugin, so workers that join or restart later get it too (a process pool
  reads it from a temporary file).
* **Results** come back to the client as tasks finish and are appended at once to the study's
  JSON-lines store there (idempotent per key: a retried task never duplicates a row). The client claims
  the runs it submits, so a second process on the same grid leaves them alone. A worker killed
  mid-task: Dask reruns its task on another worker (and ``retries`` covers errors raised in a task). A
  client that crashes resumes like a local run: the rows already stored are skipped, its claims are
  taken over, and a task it left running is attached to rather than started again.
* **Determinism.** Seeds come from the run spec, not from the worker, so a run's row does not depend on
  where it ran (the tests compare every accuracy with the in-process path on digits).
"""
from __future__ import annotations

import concurrent.futures
import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

from .conditions import RunSpec
from .pool import (TASK_RETRIES, LocalPool, available_cores, claim_runs, raise_failures, release_unstored,
                   run_tasks, store_result)
from .progress import GridProgress
from .study import IN_PROCESS, InProcess, Study
from .tasks import deliver_context, forget_context, pack_context, plan_tasks, run_batch, set_torch_threads, \
    worker_context

KINDS = ("dask", "process", "local")
LOCAL_CLUSTER_NAMES = ("", "local", "local-cluster")
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


def as_executor(executor: Any):
    """``executor`` behind the study's executor protocol: None stays None (:meth:`Study.run` chooses), an
    object with ``run_specs`` is returned as it is, a Dask ``Client`` or ``concurrent.futures`` executor
    is wrapped in a :class:`TaskExecutor`."""
    if executor is None or callable(getattr(executor, "run_specs", None)):
        return executor
    return TaskExecutor(executor)


def make_executor(scheduler_address: str | None = None, n_workers: int | None = None,
                  threads_per_worker: int = 1, kind: str = "dask", torch_threads: int | None = None,
                  **cluster_kwargs: Any):
    """An executor for :meth:`Study.run`: a :class:`TaskExecutor` over a Dask ``Client``, a
    :class:`~functions.engine.pool.LocalPool`, or :class:`~functions.engine.study.InProcess`.

    ``kind="dask"``: ``scheduler_address`` empty, ``"local"`` or ``"local-cluster"`` (optionally
    ``":N"`` for N workers) starts a LocalCluster of ``n_workers`` processes × ``threads_per_worker``
    threads on this machine; closing the client stops it. ``"tcp://host:8786"`` (or ``host:port``)
    connects to a running ``dask scheduler``; a path ending in ``.json`` is read as a scheduler file.
    ``"inprocess"`` (or ``kind="local"``) trains in the grid's own process, one run after another.
    ``kind="process"``: a pool of ``n_workers`` spawned processes on this machine (what ``Study.run``
    starts by default when it pays).

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
    if kind == "local" or address == IN_PROCESS:
        if address not in ("", IN_PROCESS):
            raise ValueError(f"scheduler_address {address!r} needs kind='dask'; kind='local' runs here")
        return InProcess()
    local = address == "" or match is not None
    if n_workers is None:
        n_workers = max(1, available_cores() // threads_per_worker)
    if torch_threads is None and local:
        torch_threads = max(1, available_cores() // (n_workers * threads_per_worker))
    if kind == "process":
        if not local:
            raise ValueError(f"scheduler_address {address!r} needs kind='dask'; a process pool is local "
                             f"(allowed addresses: {list(LOCAL_CLUSTER_NAMES)})")
        return LocalPool(n_workers, torch_threads)
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
        raise ValueError(f"scheduler_address {address!r} is not understood; allowed: {IN_PROCESS!r} (here), "
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


class TorchThreads(WorkerPlugin):
    """Dask worker plugin: PyTorch threads per worker process (re-applied to restarted workers)."""

    idempotent = False

    def __init__(self, n: int):
        self.n = n

    def setup(self, worker) -> None:
        set_torch_threads(self.n)


class StudyContext(WorkerPlugin):
    """Dask worker plugin carrying one worker context; the scheduler hands it to late-joining workers."""

    idempotent = True  # same content key → already there

    def __init__(self, key: str, blob: bytes):
        self.key, self.blob = key, blob

    def setup(self, worker) -> None:
        deliver_context(self.key, self.blob)  # the study is built by the first task: setup stays quick

    def teardown(self, worker) -> None:
        forget_context(self.key)


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
    runner = _run_on_dask if is_dask_client(executor) else _run_on_executor
    return runner(study, tasks, executor, key, blob, progress)


def _run_on_dask(study: Study, tasks: list[list[RunSpec]], client, key: str, blob: bytes,
                 progress: bool) -> int:
    """A Dask client: the context travels as a worker plugin, tasks are retried on errors. Every run is
    claimed before the tasks are submitted (Dask orders them by priority, most expensive first)."""
    from distributed import as_completed

    plugin_name = f"tl-study-context-{key}"
    client.register_plugin(StudyContext(key, blob), name=plugin_name)
    where = f"{len(client.nthreads())} Dask workers"
    futures, failures = {}, []
    with GridProgress(study, [s for batch in tasks for s in batch], where, progress) as bar:
        try:
            for rank, batch in enumerate(tasks):  # most expensive first, so that no long task starts last
                mine = claim_runs(study, batch)
                bar.skip([s for s in batch if s not in mine])  # stored or claimed by another process
                if mine:
                    future = client.submit(run_batch, key, mine, key=_task_name(key, mine),
                                           priority=len(tasks) - rank, retries=TASK_RETRIES, pure=False)
                    futures[future] = mine
            for future in as_completed(futures):
                store_result(study, bar, future, futures[future], failures)
        finally:
            client.cancel([f for f in futures if not f.done()])  # an interrupted client stops its work
            release_unstored(study, [s for batch in futures.values() for s in batch])
            try:
                client.unregister_worker_plugin(plugin_name)
            except Exception:  # noqa: BLE001 - a cluster that went away has nothing left to free
                pass
    raise_failures(failures, len(futures))
    return bar.appended


def _run_on_executor(study: Study, tasks: list[list[RunSpec]], executor, key: str, blob: bytes,
                     progress: bool) -> int:
    """A concurrent.futures executor made elsewhere: the context travels as a file each process reads
    once; a pool broken by a dying worker cannot be replaced here, so its tasks fail (a rerun resumes)."""
    handle, path = tempfile.mkstemp(prefix=f"tl-study-{key}-", suffix=".pkl")
    with os.fdopen(handle, "wb") as fh:
        fh.write(blob)
    try:
        return run_tasks(study, tasks, lambda batch: executor.submit(run_batch, key, batch, path),
                         type(executor).__name__, progress)
    finally:
        Path(path).unlink(missing_ok=True)
