"""The Study: one transfer study's config, data, pretrained networks, grid and results store.

A grid is a list of :class:`~functions.engine.conditions.RunSpec` (condition, fraction, cut, repeat). Runs
are paired: for one (fraction, repeat) every condition and cut trains on the same subset, and
re-initialised layers and the new head start from the same seed. With freezing on, blocks ``[0, k)`` are
a fixed function, so their outputs come from the frozen-prefix cache (``cache``) and only the suffix
trains. :meth:`Study.run` trains pending runs on a pool of worker processes when that pays, here
otherwise, or hands them to an executor (:class:`Executor`, built by
``functions.engine.distributed.make_executor``); either way every finished run is appended at once to the
results store, so a stopped grid resumes where it stopped, and ``run`` returns only once every planned
run is stored.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol

import torch

from .cache import PrefixCache, worth_caching
from .conditions import BASELINE_FLAGS, CONDITIONS, SOURCES, Condition, RunSpec, arm_label
from .config import StudyConfig
from .data import Split, balanced_subset, carve_validation, load_splits, stable_seed, subset_seed
from .networks import BlockNet, Suffix, cut, new_model
from .original_format import EXPORT_DIR
from .pool import LocalPool, default_workers
from .pretraining import data_keys, fingerprint, pretrain, pretrain_fingerprint, pretrained_path
from .progress import GridProgress, duration_text, training_estimate
from .protocols import variant_of
from .schema import results_row
from .store import ResultsStore, check_writable
from .training import FitResult, Tensors, final_scores, fit, fit_steps

log = logging.getLogger(__name__)

IN_PROCESS = "inprocess"  # Study.run(executor=IN_PROCESS): train in this process, whatever the grid
CLAIM_POLL_S = 2.0  # how often a finished pass looks again at runs other live processes hold


class Executor(Protocol):
    """What :meth:`Study.run` hands pending runs to: ``run_specs(study, todo, progress)`` trains them,
    appends each finished row to ``study.store`` and returns how many it stored. ``run`` may call it
    again with runs left over (their claimant died), until every run is stored.

    :class:`InProcess` trains here; :class:`~functions.engine.pool.LocalPool` on worker processes;
    ``functions.engine.distributed.make_executor`` builds any of these or a Dask one, and
    ``functions.engine.distributed.as_executor`` wraps a Dask ``Client`` or ``concurrent.futures`` executor.
    """

    def run_specs(self, study: "Study", todo: list[RunSpec], progress: bool = True) -> int: ...


class InProcess:
    """The executor that trains in the grid's own process, one run after another: for debugging
    (breakpoints, patched methods) and wherever worker processes do not pay."""

    def run_specs(self, study: "Study", todo: list[RunSpec], progress: bool = True) -> int:
        return study.run_here(todo, progress)

    def __repr__(self) -> str:
        return "InProcess()"


def _check_executor(executor: Any) -> None:
    """TypeError unless ``executor`` is None, ``"inprocess"`` or implements :class:`Executor`."""
    if executor is not None and executor != IN_PROCESS and not callable(getattr(executor, "run_specs", None)):
        raise TypeError(
            f"executor must be None (the default: worker processes when they pay), {IN_PROCESS!r} or an "
            f"executor with run_specs(study, todo, progress), got {type(executor).__name__}; build one with "
            "functions.engine.distributed.make_executor(...), or wrap a Dask Client / concurrent.futures "
            "executor with functions.engine.distributed.as_executor(...)")


def _better_on_validation(a, b) -> bool:
    """Whether fit result ``a`` beats ``b`` on validation: higher accuracy, then lower loss."""
    if a.val_acc != b.val_acc:
        return a.val_acc > b.val_acc
    return a.val_loss < b.val_loss


# How fresh layers are initialised: "crn" = from (seed, fraction, repeat, layer), shared by every arm of a
# repeat (common random numbers). Stores made before it existed hold rows without "init" and sit apart.
INIT_SCHEME = "crn"


def protocol_keys(cfg: StudyConfig) -> dict[str, Any]:
    """Everything about how a fine-tuning run is trained, whatever the protocol: the initialisation
    scheme, the variant and every protocol field, so that a store name means one kind of run."""
    return dict(init=INIT_SCHEME, protocol=cfg.protocol, variant=variant_of(cfg).label, epochs=cfg.num_train,
                patience=cfg.early_stop_patience, batch=cfg.batch_size, **run_protocol_fields(cfg))


def run_protocol_fields(cfg: StudyConfig) -> dict[str, Any]:
    """The step-protocol fields, as each row records them."""
    return dict(min_steps=cfg.min_steps, max_steps=cfg.max_steps, max_epochs=cfg.max_epochs,
                eval_every=cfg.eval_every, evals_per_epoch=cfg.evals_per_epoch,
                subset_val_fraction=cfg.subset_val_fraction,
                lr_grid=None if cfg.lr_grid is None else sorted(float(lr) for lr in cfg.lr_grid))


# ----------------------------------------------------------------------------- the study
class Study:
    """One transfer study: a config, its data, its pretrained networks and its results store.

    ``conditions`` and ``sources`` (name → maker) add to the registries of
    :mod:`~functions.engine.conditions` for this study alone, and win over them (a worker's shipped copies).
    """

    def __init__(self, cfg: StudyConfig, root: str | Path = ".", verbose: bool = True,
                 record_history: bool = False, conditions: dict[str, Condition] | None = None,
                 sources: dict[str, Callable[["Study"], BlockNet]] | None = None):
        # The data is checked (and read) only when a run or the pretraining needs it: summarising a
        # finished grid works on a machine without the dataset.
        self.cfg = cfg.validate(check_data=False)
        self.root = Path(root)
        self.verbose = verbose
        self.record_history = record_history  # rows then carry per-epoch train/val loss ("history")
        self._conditions = dict(conditions or {})
        self._source_makers = dict(sources or {})
        self._sources: dict[str, BlockNet] = {}  # source networks built or given so far, by name
        self.pretrain_infos: dict[str, dict[str, Any]] = {}  # what pretraining reported, per source name
        self.device = cfg.resolved_device()
        self._splits: tuple[Split, Split] | None = None
        self.store = ResultsStore(self.store_path())

    @property
    def source(self) -> Split:
        """The pretraining split (read on first use)."""
        return self._load_splits()[0]

    @property
    def target(self) -> Split:
        """The fine-tuning split (read on first use)."""
        return self._load_splits()[1]

    def _load_splits(self) -> tuple[Split, Split]:
        if self._splits is None:
            self.cfg.validate(check_data=True)
            self._splits = load_splits(self.cfg)
        return self._splits

    # -- paths and identity
    def results_fingerprint(self) -> str:
        """Hash of everything but the condition and the grid: rows with the same key are comparable."""
        c = self.cfg
        return fingerprint(dict(pretrain=pretrain_fingerprint(c), target=c.target_dataset,
                                classes=c.fine_tune_classes, lr=c.lr_fine_tune,
                                reinit_both_dense=c.reinit_both_dense,
                                **data_keys(c, {c.target_dataset}), **protocol_keys(c),
                                # a transform of the target images only when on (shipped names unchanged)
                                **({"block_shuffle": c.target_block_shuffle} if c.target_block_shuffle else {})))

    def store_path(self) -> Path:
        slug = (f"{self.cfg.source_dataset}{''.join(map(str, self.cfg.pre_train_classes))}_to_"
                f"{self.cfg.target_dataset}{''.join(map(str, self.cfg.fine_tune_classes))}")
        return self.root / self.cfg.results_dir / f"{slug}_{self.results_fingerprint()}.jsonl"

    # -- conditions and sources
    def condition(self, name: str) -> Condition | None:
        """The condition called ``name``; None for the baseline (trained from scratch)."""
        if name == "baseline":
            return None
        known = {**CONDITIONS, **self._conditions}
        if name not in known:
            raise ValueError(f"condition {name!r} is unknown; allowed: baseline, {list(known)}")
        return known[name]

    def source_makers(self) -> dict[str, Callable[["Study"], BlockNet]]:
        """Every source this study can transfer from (name → maker): ``A``, ``B``, registered, its own."""
        return {**SOURCES, **self._source_makers}

    def source_model(self, name: str) -> BlockNet:
        """The network a condition transfers from, built by its maker on first use (``A``: pretrained)."""
        if name not in self._sources:
            makers = self.source_makers()
            if name not in makers:
                raise ValueError(f"source {name!r} is unknown; allowed: {list(makers)} (or a custom builder)")
            self._sources[name] = makers[name](self).eval()
        return self._sources[name]

    def use_source(self, name: str, network: BlockNet) -> None:
        """Transfer from ``network`` as source ``name`` (``A``, ``B`` or another known one) instead of
        building it here (a worker given the client's networks; a benchmark sharing one network)."""
        if name not in self.source_makers():
            raise ValueError(f"source {name!r} is unknown; allowed: {list(self.source_makers())}")
        self._sources[name] = network.to(self.device).eval()

    def pretrain_on(self, name: str, cfg: StudyConfig, data: Callable[[], Split]) -> BlockNet:
        """Source ``name`` pretrained under ``cfg``: loaded when saved (no data read), else trained now on
        ``data()``; what pretraining reported goes to ``pretrain_infos[name]`` (for a source's maker)."""
        split = None
        if not pretrained_path(cfg, self.root).exists():
            check_writable(self.store.path.parent)  # a read-only results dir fails before pretraining
            split = data()
        model, self.pretrain_infos[name] = pretrain(cfg, split, self.root, verbose=self.verbose)
        return model.eval()

    @property
    def pretrained(self) -> BlockNet:
        """Source A, the pretrained network: loaded when saved (no data needed), else trained now."""
        return self.source_model("A")

    @property
    def pretrained_b(self) -> BlockNet:
        """Source B, the self-transfer source: the same network pretrained on the fine-tuning classes."""
        return self.source_model("B")

    @property
    def pretrain_info(self) -> dict[str, Any]:
        """What pretraining source A reported (test accuracy, epochs …); {} until A is loaded or trained."""
        return self.pretrain_infos.get("A", {})

    @property
    def pretrain_info_b(self) -> dict[str, Any]:
        """What pretraining source B reported; {} until B is loaded or trained."""
        return self.pretrain_infos.get("B", {})

    def cache_source(self, cond: Condition) -> BlockNet:
        """The network whose frozen blocks feed the prefix cache of a condition."""
        return self.source_model(cond.source)

    # -- planning
    def subset(self, fraction: float, repeat: int) -> torch.Tensor:
        """Labelled-subset indices of (fraction, repeat): the same for every condition and cut."""
        return balanced_subset(self.target.y_train, fraction,
                               subset_seed(self.cfg.generate_dataset_seed, fraction, repeat))

    def run_rows(self, fraction: float, repeat: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(training rows, validation rows) of a run; validation rows are None for the shared split.

        Under the realistic protocol both come from the run's own labelled subset (the same carve for
        every arm of a repeat), so no run sees more labelled images than its fraction.
        """
        labelled = self.subset(fraction, repeat)
        if self.cfg.protocol != "realistic":
            return labelled, None
        seed = stable_seed("carve", self.cfg.generate_dataset_seed, float(fraction), int(repeat))
        return carve_validation(labelled, self.target.y_train, self.cfg.subset_val_fraction, seed)

    def plan(self, conditions: Iterable[str] = ("baseline", None)) -> list[RunSpec]:
        """Every run of the grid for the given conditions (None = the config's own condition)."""
        specs = []
        for name in conditions:
            name = name or self.cfg.condition
            cuts = self.cuts_of(name)
            specs += [RunSpec(name, fraction, k, repeat) for fraction in self.cfg.percentages
                      for repeat in range(self.cfg.repeats_for(fraction)) for k in cuts]
        return specs

    def cuts_of(self, name: str) -> list[int]:
        """The cuts a condition runs at: −1 for the baseline; else its own cuts or the config's, less a
        cut 0 identical to the from-scratch baseline (computed once, as the baseline)."""
        cond = self.condition(name)
        if cond is None:
            return [-1]
        cuts = cond.cuts(self.cfg) if cond.cuts else self.cfg.cut_points()
        return [k for k in cuts if not (k == 0 and cond.cut0_is_baseline)]

    def pending(self, specs: list[RunSpec]) -> list[RunSpec]:
        return [s for s in specs if s.key not in self.store]

    # -- running
    def run(self, conditions: Iterable[str] = ("baseline", None), progress: bool = True,
            executor: Executor | str | None = None) -> "pandas.DataFrame":  # noqa: F821
        """Run every pending run of the grid (resuming a stopped one) and return all rows as a frame.

        ``executor`` None trains on a pool of single-threaded worker processes on this machine when that
        pays (:func:`~functions.engine.pool.default_workers`: a CPU grid of more than a handful of runs and
        several cores) and in this process otherwise; ``"inprocess"`` always in this process (debugging);
        an :class:`Executor` (``distributed.make_executor``) elsewhere. Returns only once every planned run
        is stored (:meth:`complete`).
        """
        _check_executor(executor)
        specs = self.plan(conditions)
        todo = self.pending(specs)
        with self._executor_for(executor, len(todo)) as runner:
            where = getattr(runner, "where", "")
            self._say(f"{self.cfg.study_name()}: {len(specs)} runs, {len(specs) - len(todo)} already in "
                      f"{self.store.path}, {len(todo)} to run" + (f" on {where}" if where and todo else "")
                      + self._estimate_text(todo))
            if todo:
                runner.run_specs(self, todo, progress)
                self.complete(specs, runner, progress)
        return self.frame([s.key for s in specs])

    def _estimate_text(self, todo: list[RunSpec]) -> str:
        """``(about 2.1 h of training at the stored runs' pace)``, or nothing when there is no pace to go by."""
        seconds = training_estimate(self.store.all(), todo) if todo else None
        return "" if seconds is None else f" (about {duration_text(seconds)} of training at the stored runs' pace)"

    def _executor_for(self, executor: Executor | str | None, n_todo: int):
        """A context giving the executor of one :meth:`run`; a pool started by default stops at its end."""
        if executor is None:
            n_workers = default_workers(n_todo, self.device)
            if n_workers > 1:
                return LocalPool(n_workers, torch_threads=1, fallback=True)
        if executor is None or isinstance(executor, str):
            executor = InProcess()
        return contextlib.nullcontext(executor)

    def complete(self, specs: list[RunSpec], executor: Executor, progress: bool = True) -> None:
        """Return once every run of ``specs`` is stored, whoever trains it.

        Runs no live process holds (their claimant died, after this process passed them) are trained
        through ``executor``; runs other live processes hold are waited for, with a line saying whose (a
        claimant that dies is taken over; a claim expires after 24 h). A run still missing after this
        process trained it again raises a RuntimeError naming it.
        """
        said = None
        while True:
            self.store.refresh()
            missing = self.pending(specs)
            if not missing:
                return
            held = self.store.live_claims([s.key for s in missing])
            free = [s for s in missing if s.key not in held]
            if free:
                self._say(f"{self.cfg.study_name()}: {len(free)} runs left by a process that stopped "
                          f"({_keys(free)}): training them")
                executor.run_specs(self, free, progress)
                self.store.refresh()
                lost = [s for s in self.pending(free) if s.key not in self.store.live_claims([s.key])]
                if lost:
                    raise RuntimeError(
                        f"{len(lost)} runs of the grid are still not stored after training them again "
                        f"({_keys(lost)}): {executor!r} returned without storing them, and no other process "
                        f"holds them; their rows are missing from {self.store.path}")
                continue
            line = _waiting_line(self.cfg.study_name(), held)
            if line != said:
                self._say(line)
                said = line
            time.sleep(CLAIM_POLL_S)

    def _say(self, line: str) -> None:
        """A line about the grid as a whole: printed when verbose, and logged."""
        if self.verbose:
            print(line)
        log.info("%s", line)

    def run_here(self, todo: list[RunSpec], progress: bool = True) -> int:
        """Train pending runs in this process, each claimed first (a run another process holds is left to
        it); the number of rows stored."""
        by_key = {spec.key: spec for spec in todo}
        with GridProgress(self, todo, enabled=progress) as bar:
            def claim(key: str) -> bool:  # a run stored or claimed elsewhere moves the bar on too
                if self.store.try_claim(key):
                    return True
                bar.skip([by_key[key]])
                return False

            for group in group_for_cache(todo):
                for _, row in self.iter_group(group, claim=claim):
                    bar.store(row)
        self.store.refresh()  # rows that other processes stored meanwhile
        return bar.appended

    def iter_group(self, group: list[RunSpec], claim: Callable[[str], bool] | None = None):
        """Run specs that share (condition, freeze) in cut order, reusing one prefix cache; yields rows.

        ``claim(key)`` is asked before each run; a run it refuses (stored or claimed elsewhere) is skipped.
        """
        cache = self.prefix_cache(self.condition(group[0].condition), group)
        for spec in sorted(group, key=lambda s: (s.cut, s.fraction, s.repeat)):
            if claim is not None and not claim(spec.key):
                continue
            if cache is not None:
                cache.advance_to(spec.cut)
                if not cache.fits:
                    cache = None
            try:
                row = self.run_one(spec, cache)
            except BaseException:
                if claim is not None:
                    self.store.release(spec.key)  # let another process (or a rerun) take it
                raise
            yield spec, row

    def prefix_cache(self, cond: Condition | None, specs: list[RunSpec]) -> PrefixCache | None:
        """The frozen-prefix cache of runs of ``cond`` from their first cut on: None when the condition trains
        its prefix or when the cache would not fit (:func:`~functions.engine.cache.worth_caching`); the one
        rule of every executor."""
        if cond is None or not cond.uses_cache:
            return None
        source = self.cache_source(cond)
        rows = torch.cat([self.subset(s.fraction, s.repeat) for s in specs])
        budget = self.cfg.cache_budget_gb * 1e9
        if not worth_caching(source, self.target, rows, max(1, min(s.cut for s in specs)), budget):
            return None
        return PrefixCache(source, self.target, rows, self.device, budget, self.cfg.eval_batch_size)

    def init_seed(self, spec: RunSpec) -> int:
        """Seed of a run's fresh weights: shared by every condition and cut of one (fraction, repeat)."""
        return stable_seed("init", self.cfg.seed, spec.fraction, spec.repeat)

    def build_model(self, spec: RunSpec) -> BlockNet:
        """The model a run starts from (seeded so that paired runs start alike)."""
        seed = self.init_seed(spec)
        n_classes = len(self.cfg.fine_tune_classes)
        cond = self.condition(spec.condition)
        if cond is None:  # the baseline: every block and the head fresh, from the per-layer CRN seeds
            with torch.random.fork_rng(devices=[]):
                scratch = new_model(self.cfg, n_classes)
            return cut(scratch, 0, n_classes, freeze=False, reinit=True, seed=seed)
        if cond.builder is not None:
            return cond.builder(self, spec)
        return cut(self.source_model(cond.source), spec.cut, n_classes, cond.freeze, cond.reinit,
                   cond.truncate, self.cfg.reinit_both_dense, seed=seed)

    def run_one(self, spec: RunSpec, cache: PrefixCache | None = None) -> dict[str, Any]:
        """Train one run and return its results row (not yet stored)."""
        return self.train(spec, cache)[1]

    def train(self, spec: RunSpec, cache: PrefixCache | None = None) -> tuple[BlockNet, dict[str, Any]]:
        """Train one run under the config's protocol; returns (the trained full model, its results row).

        With ``lr_grid`` the run is trained once per learning rate from the same initial weights and
        the one with the best accuracy on this run's own validation split is kept; ties (frequent on the
        few images of a carved split) go to the lower validation loss, then to the earlier rate. Only the
        kept network is scored on the train and test splits (the others' scores would be thrown away).
        """
        train_idx, val_idx = self.run_rows(spec.fraction, spec.repeat)
        rates = self.cfg.lr_grid or [self.cfg.lr_fine_tune]
        best, seconds = None, 0.0
        for lr in rates:
            model = self.build_model(spec).to(self.device)
            if cache is not None and spec.cut > 0:
                net, tensors = Suffix(model, spec.cut), cache.tensors(self.target, train_idx, val_idx)
            else:
                net, tensors = model, Tensors.of_split(self.target, self.device, train_idx, val_idx)
            result = self.fit_run(net, tensors, lr, spec, scores=len(rates) == 1)
            seconds += result.seconds
            if best is None or _better_on_validation(result, best[2]):
                best = (model, lr, result, tensors, net)
        model, lr, result, tensors, net = best
        if len(rates) > 1:
            start = time.perf_counter()
            train_acc, test_acc = final_scores(net, tensors, self.cfg.eval_batch_size)
            seconds += time.perf_counter() - start
            result = dataclasses.replace(result, train_acc=train_acc, test_acc=test_acc)
        result = dataclasses.replace(result, seconds=seconds)  # the run's cost: every rate it tried
        n_val = len(tensors.y_val)
        row = self.row(spec, result, n_train=len(train_idx), n_val=n_val, lr=lr)
        if result.history:
            row["history"] = result.history
        return model, row

    def fit_run(self, net, tensors: Tensors, lr: float, spec: RunSpec, scores: bool = True) -> FitResult:
        """Train ``net`` on a run's tensors under the config's protocol (epochs or optimizer steps);
        ``scores=False`` skips the final train and test accuracies (NaN)."""
        c = self.cfg
        order_seed = stable_seed("order", c.seed, spec.fraction, spec.repeat)
        if c.protocol == "original":
            return fit(net, tensors, lr, c.num_train, c.early_stop_patience, c.batch_size, order_seed,
                       c.eval_batch_size, record_history=self.record_history, scores=scores)
        return fit_steps(net, tensors, lr, c.min_steps, c.max_steps, c.eval_every, c.early_stop_patience,
                         c.batch_size, order_seed, c.eval_batch_size, record_history=self.record_history,
                         max_epochs=c.max_epochs, evals_per_epoch=c.evals_per_epoch, scores=scores)

    def row(self, spec: RunSpec, result, n_train: int, n_val: int | None = None,
            lr: float | None = None) -> dict[str, Any]:
        """The results row of a finished run (``functions.engine.schema``)."""
        c = self.cfg
        cond = self.condition(spec.condition)
        freeze, reinit, truncate = (cond.freeze, cond.reinit, cond.truncate) if cond else BASELINE_FLAGS
        return results_row(
            key=spec.key, study=c.study_name(), source_dataset=c.source_dataset,
            target_dataset=c.target_dataset, pretrain_classes=list(c.pre_train_classes),
            finetune_classes=list(c.fine_tune_classes), condition=spec.condition,
            freeze=freeze, reinit=reinit, truncate=truncate, fraction=spec.fraction,
            cut=spec.cut, repeat=spec.repeat,
            seed=self.init_seed(spec), init=INIT_SCHEME, lr=c.lr_fine_tune if lr is None else lr,
            protocol=c.protocol, protocol_variant=variant_of(c).label, patience=c.early_stop_patience,
            batch_size=c.batch_size, **run_protocol_fields(c),
            depth=c.depth, num_channels=c.num_channels, kernel_size=c.kernel_size,
            activation=c.activation_function, pooling=c.pooling_str(), n_train=n_train,
            n_val=len(self.target.y_val) if n_val is None else n_val,
            train_acc=result.train_acc, test_acc=result.test_acc,
            val_acc=None if math.isnan(result.val_acc) else result.val_acc,  # None: no validation split
            epochs=result.epochs, best_epoch=result.best_epoch, steps=result.steps,
            best_step=result.best_step, seconds=round(result.seconds, 4),
            profile=c.profile, device=self.device, config_hash=self.results_fingerprint(),
            finished_at=time.strftime("%Y-%m-%dT%H:%M:%S"),
        )

    # -- results
    def frame(self, keys: list[str] | None = None):
        """Stored rows (optionally only ``keys``) as a tidy DataFrame with an ``arm`` column."""
        import pandas as pd

        rows = self.store.all() if keys is None else [self.store.rows[k] for k in keys if k in self.store]
        df = pd.DataFrame(rows)
        if len(df):
            df["arm"] = [arm_label(c) for c in df["cut"]]
        return df

    def export_original(self, out_dir: str | Path | None = None, condition: str | None = None):
        """Write ``baselines_<tag>.json`` and ``cuts_<tag>.json`` in the original study's format, by default
        to ``<results_dir>/original_format/`` (never read back as runs)."""
        from .original_format import export_original

        condition = condition or self.cfg.condition
        df = self.frame()
        df = df[df["condition"].isin(["baseline", condition])]
        out_dir = Path(out_dir or self.root / self.cfg.results_dir / EXPORT_DIR)
        cond = self.condition(condition)
        flags = dict(freeze=cond.freeze, reinit=cond.reinit, truncate=cond.truncate)
        params = self.cfg.replace(**flags).to_original_params()
        return export_original(df, out_dir, params, tag=f"{self.store_path().stem}_{condition}")


def group_for_cache(specs: list[RunSpec]) -> list[list[RunSpec]]:
    """Split runs into groups that share one prefix cache: one group per condition, cuts ascending."""
    groups: dict[str, list[RunSpec]] = {}
    for s in specs:
        groups.setdefault(s.condition, []).append(s)
    return list(groups.values())


def _keys(specs: list[RunSpec], shown: int = 4) -> str:
    """``FR|0.05|1|1, FR|0.05|2|0, …``: the keys of a few runs, for a message."""
    return ", ".join(s.key for s in specs[:shown]) + (", …" if len(specs) > shown else "")


def _waiting_line(study_name: str, held: dict[str, dict[str, Any]]) -> str:
    """``waiting for 2 runs claimed by pid 4242 on node1 since 10:42:07 (FR|0.05|1|1, …)``, per claimant."""
    by_holder: dict[tuple, list[str]] = {}
    for key, claim in held.items():
        by_holder.setdefault((claim.get("pid"), claim.get("host"), claim.get("time")), []).append(key)
    parts = []
    for (pid, host, since), keys in by_holder.items():
        when = time.strftime("%H:%M:%S", time.localtime(since)) if isinstance(since, (int, float)) else "?"
        shown = ", ".join(keys[:4]) + (", …" if len(keys) > 4 else "")
        parts.append(f"{len(keys)} claimed by pid {pid} on {host} since {when} ({shown})")
    return (f"{study_name}: waiting for runs other processes are training: {'; '.join(parts)}; a claim "
            "whose process dies is taken over")
