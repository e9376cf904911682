"""Grid runs as tasks for other processes: planning them, shipping the study, running them on a worker.

Used by every executor that trains outside the grid's own process (the local pool of :mod:`.pool`, a Dask
cluster in :mod:`.distributed`):

* **Tasks.** One task is one (condition, fraction, cut) with a small batch of its repeats
  (:func:`plan_tasks`): all repeats of a tiny fraction (where per-run overheads dominate) down to one
  repeat per task at full data; the batch shares one frozen-prefix cache.
* **The worker context** (:func:`worker_context`): the config (as JSON), the pretrained source networks
  and the conditions in play, packed once (:func:`pack_context`). Each worker process rebuilds the study
  from it once (:func:`build_worker_study`), reading the data from the data root *on that worker*, and
  keeps it for every later task, together with the frozen-prefix features of the validation and test
  splits per cut (:class:`SharedPrefixes`): a task computes the prefix of its own training rows only.
* **Determinism.** Seeds come from the run spec, not from the worker, so a run's row does not depend on
  where it ran.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import math
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import torch

from .cache import PrefixCache, parts_nbytes
from .conditions import Condition, RunSpec
from .config import StudyConfig
from .data import subset_size
from .networks import BlockNet, forward_flops, new_model


def set_torch_threads(n: int | None) -> None:
    """PyTorch intra-op threads of this process (a worker's initializer; None leaves them)."""
    if n:
        torch.set_num_threads(n)


# ----------------------------------------------------------------------------- the worker context
@dataclass
class WorkerContext:
    """What a worker needs to rebuild a study: config, sources, conditions, study class."""

    config_json: str
    root: str
    study_class: type  # the client's Study (or subclass): built the same way on the worker
    sources: dict[str, torch.nn.Module]  # source name ("A", "B", registered) → network
    conditions: dict[str, Condition] = field(default_factory=dict)
    source_makers: dict[str, Callable] = field(default_factory=dict)
    record_history: bool = False


def worker_context(study, specs: Iterable[RunSpec]) -> WorkerContext:
    """The context of ``specs`` (runs of :class:`~functions.engine.study.Study` ``study``): their
    conditions and the pretrained networks they transfer from.

    Source networks are materialised here, on the client (pretraining them once if they are not saved
    yet), so that workers never pretrain, and never race to write the same ``.pth`` file.
    """
    names = sorted({s.condition for s in specs} - {"baseline"})
    conditions = {name: study.condition(name) for name in names}  # an unknown name raises, naming the allowed
    makers = study.source_makers()
    sources, used = {}, {}
    for cond in conditions.values():
        if cond.source in sources or (cond.builder is not None and cond.source not in makers):
            continue  # shipped already, or a label only a custom builder understands: nothing to ship
        sources[cond.source] = study.source_model(cond.source)
        used[cond.source] = makers[cond.source]
    return WorkerContext(config_json=study.cfg.to_json(), root=str(Path(study.root).resolve()),
                         study_class=type(study), sources=sources, conditions=conditions, source_makers=used,
                         record_history=study.record_history)


def pack_context(context: WorkerContext) -> tuple[str, bytes]:
    """(content key, bytes) of a context; cloudpickle carries conditions defined in a notebook.

    The key hashes the bytes, so a condition redefined under the same name gets a new context.
    """
    import cloudpickle

    blob = cloudpickle.dumps(context)
    return hashlib.sha1(blob).hexdigest()[:12], blob


def build_worker_study(context: WorkerContext):
    """Rebuild the client's study on a worker: data from this worker's data root, shipped sources.

    The worker's copy writes nothing: its results dir points at a scratch folder (results go back to
    the client's store), and it never pretrains (the sources it needs were shipped). The shipped
    conditions and source makers belong to that study alone: the worker's registries stay as they are.
    """
    scratch = Path(tempfile.gettempdir()) / "tl_study_worker"
    cfg = StudyConfig.from_dict(json.loads(context.config_json)).replace(results_dir=str(scratch))
    study = context.study_class(cfg, root=context.root, verbose=False, record_history=context.record_history,
                                conditions=context.conditions, sources=context.source_makers)
    for name, net in context.sources.items():
        study.use_source(name, net)
    return study


class SharedPrefixes:
    """Frozen-prefix features of the validation and test splits, kept by one worker for all its tasks.

    Every cached task at cut k needs blocks ``[0, k)`` applied to the same validation and test rows
    (for a small fraction, far more rows than its training subset). A worker computes them once per
    (source network, cut), deriving cut k from the deepest cut it already has, as the in-process cache
    does; a task then computes the prefix of its own training rows only. Kept within the config's
    ``cache_budget_gb``; past it, a task computes its validation and test rows itself.
    """

    def __init__(self, study):
        self.study = study
        self.budget = study.cfg.cache_budget_gb * 1e9
        self.walkers: dict[int, PrefixCache] = {}  # source network → cache walking forward over the cuts
        self.features: dict[tuple[int, int], dict[str, torch.Tensor]] = {}  # (source, k) → val/test
        self.lock = threading.Lock()  # worker threads share one instance

    def _bytes(self) -> int:
        return sum(parts_nbytes(parts) for parts in self.features.values())

    def at(self, source: BlockNet, k: int) -> dict[str, torch.Tensor] | None:
        """Validation and test features after block k−1 of ``source`` (None when over budget)."""
        with self.lock:
            key = (id(source), k)
            if key not in self.features:
                walker = self.walkers.get(id(source))
                if walker is None or walker.k > k:
                    no_train_rows = torch.empty(0, dtype=torch.long)
                    walker = PrefixCache(source, self.study.target, no_train_rows, self.study.device,
                                         self.budget, self.study.cfg.eval_batch_size)
                    walker.drop("train")
                    self.walkers[id(source)] = walker
                while walker.k < k:
                    walker.advance_to(walker.k + 1)
                    features = walker.features()
                    if self._bytes() + parts_nbytes(features) <= self.budget:
                        self.features[(id(source), walker.k)] = features
                if key not in self.features:
                    return None
            return self.features[key]

    def task_cache(self, condition: Condition, specs: list[RunSpec]) -> PrefixCache | None:
        """The prefix cache of one task (all ``specs`` at one cut), by the study's own rule
        (:meth:`Study.prefix_cache`), with the validation and test features from this worker's store."""
        k = specs[0].cut
        cache = self.study.prefix_cache(condition, specs) if k > 0 else None
        if cache is None:
            return None
        shared = self.at(self.study.cache_source(condition), k)
        if shared is not None:
            cache.drop("val", "test")  # taken from this worker's shared features below
        cache.advance_to(k)
        if not cache.fits:
            return None
        if shared is not None:
            cache.adopt(shared, k)
        return cache


@dataclass
class WorkerState:
    """What one worker process keeps for one study: the rebuilt study and its shared prefixes."""

    study: Any
    prefixes: SharedPrefixes
    tasks_run: int = 0


# Per worker process: context bytes delivered ahead of the tasks (a Dask plugin), and the studies built.
_CONTEXT_BLOBS: dict[str, bytes] = {}
_STATES: "OrderedDict[str, WorkerState]" = OrderedDict()
_STATES_KEPT = 2  # a long-lived worker serving several studies keeps only the latest few in memory
_STATE_LOCK = threading.Lock()  # two threads of one worker must not both build the same study


def deliver_context(key: str, blob: bytes) -> None:
    """Keep the packed context ``key`` in this process for the tasks that will need it (built lazily)."""
    _CONTEXT_BLOBS[key] = blob


def forget_context(key: str) -> None:
    """Drop context ``key`` and the study built from it from this process."""
    _CONTEXT_BLOBS.pop(key, None)
    with _STATE_LOCK:
        _STATES.pop(key, None)


def _worker_state(key: str, blob_path: str | None = None) -> WorkerState:
    """The study of context ``key`` in this process, built on first use."""
    import cloudpickle

    with _STATE_LOCK:
        if key in _STATES:
            _STATES.move_to_end(key)
            return _STATES[key]
        if blob_path is not None:
            blob = Path(blob_path).read_bytes()
        elif key in _CONTEXT_BLOBS:
            blob = _CONTEXT_BLOBS[key]
        else:
            raise RuntimeError(f"worker context {key} was never delivered to this worker (no plugin)")
        study = build_worker_study(cloudpickle.loads(blob))
        _STATES[key] = WorkerState(study, SharedPrefixes(study))
        while len(_STATES) > _STATES_KEPT:
            _STATES.popitem(last=False)
        return _STATES[key]


def run_batch(key: str, specs: list[RunSpec], blob_path: str | None = None) -> list[dict[str, Any]]:
    """Worker task: train a batch of runs (as planned, one (condition, fraction, cut)); returns their rows.

    Runs of one condition and cut share one prefix cache; any other mix is split accordingly.
    """
    state = _worker_state(key, blob_path)
    rows = []
    ordered = sorted(specs, key=lambda s: (s.condition, s.cut, s.fraction, s.repeat))
    for (name, _), runs in itertools.groupby(ordered, key=lambda s: (s.condition, s.cut)):
        runs = list(runs)
        condition = state.study.condition(name)
        cache = state.prefixes.task_cache(condition, runs) if condition is not None else None
        rows += [state.study.run_one(spec, cache) for spec in runs]
    state.tasks_run += 1
    return rows


# ----------------------------------------------------------------------------- planning tasks
def run_cost(study, spec: RunSpec, flops: list[float]) -> float:
    """Relative cost of one run: (its training rows × 3 for forward + backward, plus the validation rows
    evaluated every epoch) × the FLOPs per row of what trains: the suffix after the cut when the prefix
    is cached, else the whole network (a baseline at 0.1 % of the data costs far more than FR there)."""
    n_train, n_val = len(study.target.y_train), len(study.target.y_val)
    rows = subset_size(n_train, spec.fraction, len(study.cfg.fine_tune_classes))
    condition = study.condition(spec.condition)
    start = spec.cut if condition is not None and condition.uses_cache and spec.cut > 0 else 0
    return (3.0 * rows + n_val) * sum(flops[start:])


def plan_tasks(study, specs: list[RunSpec], repeats_per_task: int | None = None) -> list[list[RunSpec]]:
    """Batches of runs, one (condition, fraction, cut) each, most expensive first.

    ``repeats_per_task`` None: batch repeats while a task costs at most half of the grid's most
    expensive run (which bounds the grid's duration anyway), so cheap runs travel together and
    expensive ones alone: balance across workers with few round trips.
    """
    if repeats_per_task is not None and (isinstance(repeats_per_task, bool)
                                         or not isinstance(repeats_per_task, int) or repeats_per_task < 1):
        raise ValueError(f"repeats_per_task must be an integer >= 1 or None, got {repeats_per_task!r}")
    if not specs:
        return []
    flops = forward_flops(new_model(study.cfg, len(study.cfg.fine_tune_classes)))  # per block, then head
    groups: dict[tuple[str, float, int], list[RunSpec]] = {}
    for s in specs:
        groups.setdefault((s.condition, s.fraction, s.cut), []).append(s)
    cost = {group: run_cost(study, runs[0], flops) for group, runs in groups.items()}
    target = max(cost.values()) / 2
    tasks = []
    for group, runs in groups.items():
        runs = sorted(runs, key=lambda s: s.repeat)
        per_task = repeats_per_task or max(1, int(target // cost[group]))
        n_chunks = math.ceil(len(runs) / per_task)
        size = math.ceil(len(runs) / n_chunks)  # even chunks: 12 repeats at 11 per task → 6 + 6
        tasks += [runs[i:i + size] for i in range(0, len(runs), size)]
    return sorted(tasks, key=lambda t: -len(t) * cost[(t[0].condition, t[0].fraction, t[0].cut)])
