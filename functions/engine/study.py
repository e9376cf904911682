"""The Study: one transfer study's config, data, pretrained networks, grid and results store.

A grid is a list of :class:`~functions.engine.conditions.RunSpec` (condition, fraction, cut, repeat). Runs
are paired: for one (fraction, repeat) every condition and cut trains on the same subset, and
re-initialised layers and the new head start from the same seed. With freezing on, blocks ``[0, k)`` are
a fixed function, so their outputs come from the frozen-prefix cache (``cache``) and only the suffix
trains. :meth:`Study.run` trains pending runs here, or hands them to an executor (:class:`Executor`,
built by ``functions.engine.distributed.make_executor``); either way every finished run is appended at
once to the results store, so a stopped grid resumes where it stopped.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol

import torch
from tqdm.auto import tqdm

from .cache import PrefixCache, worth_caching
from .conditions import BASELINE_FLAGS, CONDITIONS, SOURCES, Condition, RunSpec
from .config import StudyConfig
from .data import (Split, balanced_subset, carve_validation, dataset_identity, is_canonical, load_splits,
                   stable_seed, subset_seed)
from .fileio import atomic_torch_save, atomic_write_text
from .networks import BlockNet, Suffix, cut, load_state, new_model
from .original_format import EXPORT_DIR
from .protocols import variant_of
from .schema import results_row
from .store import ResultsStore, check_writable
from .training import FitResult, Tensors, fit, fit_steps

# One INFO line per finished run (and per pretraining): a sign of life for a grid run from a terminal.
# Nothing is shown unless someone attaches a handler (functions.notebook.log_to_terminal does, in notebooks).
log = logging.getLogger(__name__)


def log_run(done: int, total: int, row: dict[str, Any]) -> None:
    """Log one finished run: ``MNIST[0-4]->MNIST[5-9] 12/120 FR f=0.01 k=2 r=3 test_acc=0.951 (3.2 s)``."""
    if not log.isEnabledFor(logging.INFO):
        return
    variant = row.get("protocol_variant", "original")
    where = "" if variant == "original" else f" [{variant}]"
    log.info("%s%s %d/%d %s f=%g k=%d r=%d test_acc=%.3f (%.1f s)", row.get("study", "?"), where, done, total,
             row["condition"], row["fraction"], row["cut"], row["repeat"], row["test_acc"], row.get("seconds", 0.0))


class Executor(Protocol):
    """What :meth:`Study.run` hands pending runs to: ``run_specs(study, todo, progress)`` trains them
    elsewhere, appends each finished row to ``study.store`` and returns how many it stored.

    ``functions.engine.distributed.make_executor`` builds one (a Dask cluster or a process pool);
    ``functions.engine.distributed.as_executor`` wraps a Dask ``Client`` or ``concurrent.futures`` executor.
    """

    def run_specs(self, study: "Study", todo: list[RunSpec], progress: bool = True) -> int: ...


def _check_executor(executor: Any) -> None:
    """TypeError unless ``executor`` is None or implements :class:`Executor`."""
    if executor is not None and not callable(getattr(executor, "run_specs", None)):
        raise TypeError(
            f"executor must be None (train here) or an executor with run_specs(study, todo, progress), got "
            f"{type(executor).__name__}; build one with functions.engine.distributed.make_executor(...), or "
            "wrap a Dask Client / concurrent.futures executor with functions.engine.distributed.as_executor(...)")


# ----------------------------------------------------------------------------- data & pretraining
def _better_on_validation(a, b) -> bool:
    """Whether fit result ``a`` beats ``b`` on validation: higher accuracy, then lower loss."""
    if a.val_acc != b.val_acc:
        return a.val_acc > b.val_acc
    return a.val_loss < b.val_loss


def _fingerprint(data: dict[str, Any]) -> str:
    return hashlib.sha1(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:10]


def pretrain_fingerprint(cfg: StudyConfig) -> str:
    """Hash of everything that determines the pretrained weights (the source data's identity included)."""
    keys = dict(cfg.model_fields(), source=cfg.source_dataset, classes=cfg.pre_train_classes,
                lr=cfg.lr_pretrain, epochs=cfg.num_train, patience=cfg.early_stop_patience,
                batch=cfg.batch_size, val=cfg.val_split, data_seed=cfg.generate_dataset_seed, seed=cfg.seed,
                train_limit=cfg.train_limit, test_limit=cfg.test_limit)
    keys.update(_data_keys(cfg, {cfg.source_dataset}))
    return _fingerprint(keys)


def _data_keys(cfg: StudyConfig, datasets: set[str]) -> dict[str, str]:
    """Identity of the data files a fingerprint depends on, for datasets that are not the canonical files.

    The canonical files (what torchvision downloads) add nothing, so fingerprints made before data
    identity was hashed stay valid; any other files under ``data_root`` give a different fingerprint,
    so their rows and pretrained models never mix with those of the real dataset.
    """
    root = cfg.resolved_data_root()
    return {f"data:{name}": dataset_identity(name, root) for name in sorted(datasets)
            if not is_canonical(name, root)}


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


def pretrained_path(cfg: StudyConfig, root: str | Path = ".") -> Path:
    """Where the pretrained model of this config lives: ``pretrained_models/<source>_<classes>_<hash>.pth``."""
    classes = "".join(str(c) for c in cfg.pre_train_classes)
    name = f"{cfg.source_dataset}_{classes}_d{cfg.depth}c{cfg.num_channels}_{pretrain_fingerprint(cfg)}.pth"
    return Path(root) / cfg.pretrained_dir / name


def pretrain(cfg: StudyConfig, source: Split | None = None, root: str | Path = ".", force: bool = False,
             verbose: bool = True) -> tuple[BlockNet, dict[str, Any]]:
    """Train on the source classes, or load the saved model of the same config; returns (model, info)."""
    path = pretrained_path(cfg, root)
    info_path = path.with_suffix(".json")
    if path.exists() and not force:
        model = load_pretrained(cfg, path)
        info = _read_info(info_path)
        if verbose:
            acc = info.get("test_acc")
            print(f"loaded pretrained model {path} (test acc "
                  f"{'unknown: ' + info_path.name + ' is missing' if acc is None else format(acc, '.4f')})")
        return model, info
    check_writable(path.parent)  # fail before training, not after, on a read-only folder
    log.info("pretraining %s on %s %s (%s)", cfg.architecture, cfg.source_dataset, cfg.pre_train_classes,
             path.name)
    source = source or load_splits(cfg)[0]
    torch.manual_seed(stable_seed("pretrain", cfg.seed))
    model = new_model(cfg, len(cfg.pre_train_classes))
    device = cfg.resolved_device()
    model.to(device)
    result = fit(model, _split_tensors(source, device), cfg.lr_pretrain, cfg.num_train,
                 cfg.early_stop_patience, cfg.batch_size, stable_seed("pretrain-order", cfg.seed),
                 cfg.eval_batch_size, record_history=True)
    model.cpu()
    info = {"config": cfg.to_dict(), "train_acc": result.train_acc, "val_acc": result.val_acc,
            "test_acc": result.test_acc, "epochs": result.epochs, "seconds": result.seconds,
            "history": result.history}
    # The info first: a model file never exists without its info (the model is what marks "done").
    atomic_write_text(info_path, json.dumps(info, indent=2))
    atomic_torch_save(model.state_dict(), path)
    log.info("pretrained %s: test acc %.4f after %d epochs (%.1f s)", path.name, result.test_acc, result.epochs,
             result.seconds)
    if verbose:
        print(f"pretrained {path.name}: test acc {result.test_acc:.4f} after {result.epochs} epochs "
              f"({result.seconds:.1f} s)")
    return model, info


def load_pretrained(cfg: StudyConfig, path: Path) -> BlockNet:
    """A saved pretrained model; a corrupt or mismatched file raises one error naming it."""
    model = new_model(cfg, len(cfg.pre_train_classes))
    try:
        load_state(model, torch.load(path, map_location="cpu", weights_only=True))
    except Exception as err:  # truncated, empty, not a state dict, or another architecture's weights
        raise RuntimeError(
            f"pretrained model {path} cannot be loaded into this config's network ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else 'no detail'}); delete the file to pretrain again"
        ) from err
    return model


def _read_info(info_path: Path) -> dict[str, Any]:
    """The pretraining info next to a model ({} when missing; an unreadable file is named)."""
    if not info_path.exists():
        return {}
    try:
        return json.loads(info_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RuntimeError(f"pretraining info {info_path} is not valid JSON ({err}); delete it and the "
                           ".pth beside it to pretrain again") from err


def _split_tensors(split: Split, device: str, train_idx: torch.Tensor | None = None,
                   val_idx: torch.Tensor | None = None) -> Tensors:
    """Tensors of a run; ``val_idx`` (training-split rows) replaces the validation split when given."""
    x_train = split.x_train if train_idx is None else split.x_train[train_idx]
    y_train = split.y_train if train_idx is None else split.y_train[train_idx]
    x_val, y_val = ((split.x_val, split.y_val) if val_idx is None
                    else (split.x_train[val_idx], split.y_train[val_idx]))
    return Tensors(x_train.to(device), y_train.to(device), x_val.to(device), y_val.to(device),
                   split.x_test.to(device), split.y_test.to(device))


# ----------------------------------------------------------------------------- the grid
class Study:
    """One transfer study: a config, its data, its pretrained networks and its results store."""

    def __init__(self, cfg: StudyConfig, root: str | Path = ".", verbose: bool = True,
                 record_history: bool = False):
        # The data is checked (and read) only when a run or the pretraining needs it: summarising a
        # finished grid works on a machine without the dataset.
        self.cfg = cfg.validate(check_data=False)
        self.root = Path(root)
        self.verbose = verbose
        self.record_history = record_history  # rows then carry per-epoch train/val loss ("history")
        self._sources: dict[str, BlockNet] = {}
        self.device = cfg.resolved_device()
        self._splits: tuple[Split, Split] | None = None
        self.store = ResultsStore(self.store_path())
        self._pretrained: BlockNet | None = None
        self._pretrained_b: BlockNet | None = None
        self.pretrain_info: dict[str, Any] = {}

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
        return _fingerprint(dict(pretrain=pretrain_fingerprint(c), target=c.target_dataset,
                                 classes=c.fine_tune_classes, lr=c.lr_fine_tune,
                                 reinit_both_dense=c.reinit_both_dense,
                                 **_data_keys(c, {c.target_dataset}), **protocol_keys(c),
                                 # a transform of the target images only when on (shipped names unchanged)
                                 **({"block_shuffle": c.target_block_shuffle} if c.target_block_shuffle else {})))

    def store_path(self) -> Path:
        slug = (f"{self.cfg.source_dataset}{''.join(map(str, self.cfg.pre_train_classes))}_to_"
                f"{self.cfg.target_dataset}{''.join(map(str, self.cfg.fine_tune_classes))}")
        return self.root / self.cfg.results_dir / f"{slug}_{self.results_fingerprint()}.jsonl"

    @property
    def pretrained(self) -> BlockNet:
        """The pretrained network: loaded when saved (no data needed), else trained now."""
        if self._pretrained is None:
            source = None
            if not pretrained_path(self.cfg, self.root).exists():
                check_writable(self.store.path.parent)  # a read-only results dir fails before pretraining
                source = self.source
            self._pretrained, self.pretrain_info = pretrain(self.cfg, source, self.root, verbose=self.verbose)
            self._pretrained.eval()
        return self._pretrained

    @property
    def pretrained_b(self) -> BlockNet:
        """The self-transfer source: the same network pretrained on the fine-tuning classes (B)."""
        if self._pretrained_b is None:
            cfg_b = self.cfg.replace(source_dataset=self.cfg.target_dataset,
                                     pre_train_classes=list(self.cfg.fine_tune_classes))
            self._pretrained_b, self.pretrain_info_b = pretrain(cfg_b, self.target, self.root,
                                                                verbose=self.verbose)
            self._pretrained_b.eval()
        return self._pretrained_b

    def source_model(self, source: str) -> BlockNet:
        """The network a condition transfers from: ``"A"`` or ``"B"``."""
        if source == "A":
            return self.pretrained
        if source == "B":
            return self.pretrained_b
        if source in SOURCES:
            if source not in self._sources:
                self._sources[source] = SOURCES[source](self).eval()
            return self._sources[source]
        raise ValueError(f"source {source!r} is unknown; allowed: 'A', 'B', {list(SOURCES)} "
                         "(or a custom builder)")

    def use_source(self, source: str, network: BlockNet) -> None:
        """Transfer from ``network`` as source ``"A"``, ``"B"`` or a registered one, instead of pretraining
        or building it here (a worker given the client's networks; a benchmark sharing one network)."""
        network = network.to(self.device).eval()
        if source == "A":
            self._pretrained = network
        elif source == "B":
            self._pretrained_b = network
        elif source in SOURCES:
            self._sources[source] = network
        else:
            raise ValueError(f"source {source!r} is unknown; allowed: 'A', 'B', {list(SOURCES)}")

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
            if name != "baseline" and name not in CONDITIONS:
                raise ValueError(f"condition {name!r} is unknown; allowed: baseline, {list(CONDITIONS)}")
            cond = CONDITIONS.get(name)
            for fraction in self.cfg.percentages:
                for repeat in range(self.cfg.repeats_for(fraction)):
                    if name == "baseline":
                        specs.append(RunSpec("baseline", fraction, -1, repeat))
                        continue
                    cuts = cond.cuts(self.cfg) if cond.cuts else self.cfg.cut_points()
                    for k in cuts:
                        if k == 0 and cond.cut0_is_baseline:
                            continue  # identical to the from-scratch baseline: computed once
                        specs.append(RunSpec(name, fraction, k, repeat))
        return specs

    def pending(self, specs: list[RunSpec]) -> list[RunSpec]:
        return [s for s in specs if s.key not in self.store]

    # -- running
    def run(self, conditions: Iterable[str] = ("baseline", None), progress: bool = True,
            executor: Executor | None = None) -> "pandas.DataFrame":  # noqa: F821
        """Run every pending run of the grid (resuming a stopped one) and return all rows as a frame.

        ``executor`` None trains here; an :class:`Executor` (``distributed.make_executor``) trains elsewhere.
        """
        _check_executor(executor)
        specs = self.plan(conditions)
        todo = self.pending(specs)
        if self.verbose:
            print(f"{self.cfg.study_name()}: {len(specs)} runs, {len(specs) - len(todo)} already in "
                  f"{self.store.path}, {len(todo)} to run")
        if todo:
            if executor is None:
                self._run_local(todo, progress)
            else:
                executor.run_specs(self, todo, progress)
        return self.frame([s.key for s in specs])

    def _run_local(self, todo: list[RunSpec], progress: bool) -> None:
        """Train pending runs here; a run another process has claimed (same store) is left to it."""
        bar = tqdm(total=len(todo), desc=self.cfg.study_name(), disable=not progress)
        done = 0
        for group in group_for_cache(todo):
            for spec, row in self.iter_group(group, claim=self.store.try_claim):
                self.store.append(row)
                done += 1
                log_run(done, len(todo), row)
                bar.update()
                bar.set_postfix(cond=spec.condition, f=spec.fraction, k=spec.cut, acc=f"{row['test_acc']:.3f}")
        bar.close()
        self.store.refresh()  # rows that other processes stored meanwhile

    def iter_group(self, group: list[RunSpec], claim: Callable[[str], bool] | None = None):
        """Run specs that share (condition, freeze) in cut order, reusing one prefix cache; yields rows.

        ``claim(key)`` is asked before each run; a run it refuses (stored or claimed elsewhere) is skipped.
        """
        cond = CONDITIONS.get(group[0].condition)
        cache = None
        if cond is not None and cond.uses_cache:
            source = self.cache_source(cond)
            rows_needed = torch.cat([self.subset(s.fraction, s.repeat) for s in group])
            budget = self.cfg.cache_budget_gb * 1e9
            if worth_caching(source, self.target, rows_needed, max(1, min(s.cut for s in group)), budget):
                cache = PrefixCache(source, self.target, rows_needed, self.device, budget,
                                    self.cfg.eval_batch_size)
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

    def cache_source(self, cond: Condition) -> BlockNet:
        """The network whose frozen blocks feed the prefix cache of a condition."""
        return self.source_model(cond.source)

    def init_seed(self, spec: RunSpec) -> int:
        """Seed of a run's fresh weights: shared by every condition and cut of one (fraction, repeat)."""
        return stable_seed("init", self.cfg.seed, spec.fraction, spec.repeat)

    def build_model(self, spec: RunSpec) -> BlockNet:
        """The model a run starts from (seeded so that paired runs start alike)."""
        seed = self.init_seed(spec)
        n_classes = len(self.cfg.fine_tune_classes)
        if spec.condition == "baseline":  # every block and the head fresh, from the per-layer CRN seeds
            with torch.random.fork_rng(devices=[]):
                scratch = new_model(self.cfg, n_classes)
            return cut(scratch, 0, n_classes, freeze=False, reinit=True, seed=seed)
        cond = CONDITIONS[spec.condition]
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
        few images of a carved split) go to the lower validation loss, then to the earlier rate.
        """
        train_idx, val_idx = self.run_rows(spec.fraction, spec.repeat)
        best, seconds = None, 0.0
        for lr in self.cfg.lr_grid or [self.cfg.lr_fine_tune]:
            model = self.build_model(spec).to(self.device)
            if cache is not None and spec.cut > 0:
                net, tensors = Suffix(model, spec.cut), cache.tensors(self.target, train_idx, val_idx)
            else:
                net, tensors = model, _split_tensors(self.target, self.device, train_idx, val_idx)
            result = self.fit(net, tensors, lr, spec)
            seconds += result.seconds
            if best is None or _better_on_validation(result, best[2]):
                best = (model, lr, result, len(tensors.y_val))
        model, lr, result, n_val = best
        result = dataclasses.replace(result, seconds=seconds)  # the run's cost: every rate it tried
        row = self.row(spec, result, n_train=len(train_idx), n_val=n_val, lr=lr)
        if result.history:
            row["history"] = result.history
        return model, row

    def fit(self, net, tensors: Tensors, lr: float, spec: RunSpec) -> FitResult:
        """Train ``net`` on a run's tensors under the config's protocol (epochs or optimizer steps)."""
        c = self.cfg
        order_seed = stable_seed("order", c.seed, spec.fraction, spec.repeat)
        if c.protocol == "original":
            return fit(net, tensors, lr, c.num_train, c.early_stop_patience, c.batch_size, order_seed,
                       c.eval_batch_size, record_history=self.record_history)
        return fit_steps(net, tensors, lr, c.min_steps, c.max_steps, c.eval_every, c.early_stop_patience,
                         c.batch_size, order_seed, c.eval_batch_size, record_history=self.record_history,
                         max_epochs=c.max_epochs, evals_per_epoch=c.evals_per_epoch)

    def row(self, spec: RunSpec, result, n_train: int, n_val: int | None = None,
            lr: float | None = None) -> dict[str, Any]:
        """The results row of a finished run (``functions.engine.schema``)."""
        c = self.cfg
        cond = CONDITIONS.get(spec.condition)
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
            df["arm"] = ["baseline" if c == -1 else f"cut {c}" for c in df["cut"]]
        return df

    def export_original(self, out_dir: str | Path | None = None, condition: str | None = None):
        """Write ``baselines_<tag>.json`` and ``cuts_<tag>.json`` in the original study's format, by default
        to ``<results_dir>/original_format/`` (never read back as runs)."""
        from .original_format import export_original

        condition = condition or self.cfg.condition
        df = self.frame()
        df = df[df["condition"].isin(["baseline", condition])]
        out_dir = Path(out_dir or self.root / self.cfg.results_dir / EXPORT_DIR)
        cond = CONDITIONS[condition]
        flags = dict(freeze=cond.freeze, reinit=cond.reinit, truncate=cond.truncate)
        params = self.cfg.replace(**flags).to_original_params()
        return export_original(df, out_dir, params, tag=f"{self.store_path().stem}_{condition}")


def group_for_cache(specs: list[RunSpec]) -> list[list[RunSpec]]:
    """Split runs into groups that share one prefix cache: one group per condition, cuts ascending."""
    groups: dict[str, list[RunSpec]] = {}
    for s in specs:
        groups.setdefault(s.condition, []).append(s)
    return list(groups.values())

