"""Pretraining, baselines and cut grids over fractions × cuts × repeats; resumable.

A grid is a list of :class:`RunSpec` (condition, fraction, cut, repeat). Runs are paired: for one
(fraction, repeat) every condition and cut trains on the same subset, and re-initialised layers and the
new head start from the same seed. With freezing on, blocks ``[0, k)`` are a fixed function, so their
outputs are computed once per cut (the frozen-prefix cache, derived cut by cut) and only the suffix trains.
"""
from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
from tqdm.auto import tqdm

from .config import DATASET_SHAPES, StudyConfig
from .data import (Split, balanced_subset, carve_validation, dataset_identity, is_canonical, load_split,
                   stable_seed, subset_seed)
from .models import CustomCNN, Suffix, cut, load_state
from .fileio import atomic_torch_save, atomic_write_text
from .store import ResultsStore, check_writable
from .training import FitResult, Tensors, fit, fit_steps

@dataclass(frozen=True)
class Condition:
    """How a run's model is made from a pretrained one at cut k.

    ``source``: which network the kept blocks come from: ``"A"`` (pretrained on the pretraining classes),
    ``"B"`` (pretrained on the fine-tuning classes themselves: the self-transfer control) or any name a
    custom ``builder`` understands. ``builder(study, spec) -> model`` replaces the standard cut; ``cuts``
    (``cfg -> list``) replaces the grid's cut points; ``cacheable`` says whether blocks ``[0, k)`` are
    frozen copies of the source model, so that their outputs may be served from the prefix cache.
    """

    name: str
    freeze: bool = True
    reinit: bool = True
    truncate: bool = False
    source: str = "A"
    builder: Callable[["Study", "RunSpec"], CustomCNN] | None = None
    cuts: Callable[[StudyConfig], list[int]] | None = None
    cacheable: bool | None = None
    description: str = ""

    @property
    def uses_cache(self) -> bool:
        return self.freeze if self.cacheable is None else self.cacheable

    @property
    def cut0_is_baseline(self) -> bool:
        """Cut 0 with re-init of a standard cut is the from-scratch baseline (same fresh weights, by CRN).

        Truncation at cut 0 is not: it removes every block and trains a head on raw pixels, its own arm.
        """
        return self.builder is None and self.reinit and not self.truncate


CONDITIONS: dict[str, Condition] = {}


def register_condition(condition: Condition) -> Condition:
    """Make a condition available to every grid by name."""
    CONDITIONS[condition.name] = condition
    return condition


# Transfer sources beyond the built-in "A" and "B": name → (study → network), built once per study.
SOURCES: dict[str, Callable[["Study"], CustomCNN]] = {}


def register_source(name: str, make: Callable[["Study"], CustomCNN]) -> Callable[["Study"], CustomCNN]:
    """Make ``Condition(source=name)`` transfer from (and cache the prefix of) ``make(study)``."""
    if name in ("A", "B"):
        raise ValueError(f"source name {name!r} is built in; choose another name")
    SOURCES[name] = make
    return make


for _name, _flags, _text in (
        ("FR", (True, True, False), "transferred blocks frozen, later blocks re-initialised"),
        ("F", (True, False, False), "transferred blocks frozen, later blocks keep pretrained weights"),
        ("UR", (False, True, False), "transferred blocks fine-tuned, later blocks re-initialised"),
        ("U", (False, False, False), "every block fine-tuned from pretrained weights"),
        ("FT", (True, False, True), "transferred blocks frozen, later blocks removed (truncation)"),
        ("UT", (False, False, True), "transferred blocks fine-tuned, later blocks removed")):
    register_condition(Condition(_name, *_flags, description=_text))


@dataclass(frozen=True)
class RunSpec:
    """One fine-tuning run of a grid."""

    condition: str  # "baseline" or a key of CONDITIONS
    fraction: float
    cut: int  # -1 for the baseline
    repeat: int

    @property
    def key(self) -> str:
        return f"{self.condition}|{self.fraction:g}|{self.cut}|{self.repeat}"


# ----------------------------------------------------------------------------- data & pretraining
def load_splits(cfg: StudyConfig) -> tuple[Split, Split]:
    """(pretraining split, fine-tuning split) of a study."""
    common = dict(root=cfg.resolved_data_root(), download=cfg.download, val_split=cfg.val_split,
                  seed=cfg.generate_dataset_seed, train_limit=cfg.train_limit, test_limit=cfg.test_limit)
    source = load_split(cfg.source_dataset, cfg.pre_train_classes, **common)
    target = load_split(cfg.target_dataset, cfg.fine_tune_classes, **common)
    return source, target


def new_model(cfg: StudyConfig, num_classes: int) -> CustomCNN:
    """An untrained CustomCNN shaped for the study's datasets."""
    channels, size, _ = DATASET_SHAPES[cfg.source_dataset]
    if cfg.architecture == "ResNet":
        from .resnet import ResNet

        return ResNet.from_config(cfg, channels, size, num_classes)
    return CustomCNN.from_config(cfg, channels, size, num_classes)


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


def protocol_keys(cfg: StudyConfig) -> dict[str, Any]:
    """The fine-tuning protocol's fields that change results (none for the original protocol without an
    lr grid, so stores made before protocols existed keep their fingerprint)."""
    keys: dict[str, Any] = {}
    if cfg.protocol != "original":
        keys.update(protocol=cfg.protocol, min_steps=cfg.min_steps, max_steps=cfg.max_steps,
                    eval_every=cfg.eval_every, patience=cfg.early_stop_patience, batch=cfg.batch_size)
        if cfg.protocol == "realistic":
            keys["subset_val_fraction"] = cfg.subset_val_fraction
    if cfg.lr_grid is not None:
        keys["lr_grid"] = sorted(float(lr) for lr in cfg.lr_grid)
    return keys


def pretrained_path(cfg: StudyConfig, root: str | Path = ".") -> Path:
    """Where the pretrained model of this config lives: ``pretrained_models/<source>_<classes>_<hash>.pth``."""
    classes = "".join(str(c) for c in cfg.pre_train_classes)
    name = f"{cfg.source_dataset}_{classes}_d{cfg.depth}c{cfg.num_channels}_{pretrain_fingerprint(cfg)}.pth"
    return Path(root) / cfg.pretrained_dir / name


def pretrain(cfg: StudyConfig, source: Split | None = None, root: str | Path = ".", force: bool = False,
             verbose: bool = True) -> tuple[CustomCNN, dict[str, Any]]:
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
    if verbose:
        print(f"pretrained {path.name}: test acc {result.test_acc:.4f} after {result.epochs} epochs "
              f"({result.seconds:.1f} s)")
    return model, info


def load_pretrained(cfg: StudyConfig, path: Path) -> CustomCNN:
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


# ----------------------------------------------------------------------------- frozen-prefix cache
class PrefixCache:
    """Outputs of the frozen blocks ``[0, k)`` for the rows runs need, advanced one block at a time.

    Rows: validation, test, and the union of the training subsets in play. Stored in fp32 when they fit
    the memory budget, else bf16; when even that does not fit, :meth:`features` returns None and runs
    fall back to computing the prefix on the fly.
    """

    def __init__(self, pretrained: CustomCNN, split: Split, train_rows: torch.Tensor, device: str,
                 budget_bytes: float, batch_size: int = 2048):
        self.blocks = pretrained.blocks
        self.device, self.budget, self.batch_size = device, budget_bytes, batch_size
        self.train_rows = torch.unique(train_rows)  # sorted: positions found by searchsorted
        self.k = 0
        self.parts = {"train": split.x_train[self.train_rows], "val": split.x_val, "test": split.x_test}
        self.parts = {name: x.to(device) for name, x in self.parts.items()}
        self.fits = True

    def _n_rows(self) -> int:
        return sum(len(x) for x in self.parts.values())

    @torch.no_grad()  # not inference_mode: the cached tensors later feed autograd-tracked training
    def advance_to(self, k: int) -> None:
        """Apply blocks ``[self.k, k)`` to the cached rows (derive cut k from cut k−1)."""
        if k < self.k:
            raise ValueError(f"the cache only moves forward: at cut {self.k}, asked for {k}")
        for i in range(self.k, k):
            block = self.blocks[i].to(self.device).eval()
            for name, x in self.parts.items():
                self.parts[name] = self._apply(block, x)
            self.k = i + 1

    def _apply(self, block, x: torch.Tensor) -> torch.Tensor:
        block = block.to(memory_format=torch.channels_last)
        out_shape = block(x[:1].float()).shape[1:]
        per_row = int(torch.tensor(out_shape).prod())
        dtype = torch.float32 if self._n_rows() * per_row * 4 <= self.budget else torch.bfloat16
        out = torch.empty((len(x),) + tuple(out_shape), dtype=dtype, device=x.device,
                          memory_format=torch.channels_last)
        for s in range(0, len(x), self.batch_size):
            batch = x[s:s + self.batch_size].float().contiguous(memory_format=torch.channels_last)
            out[s:s + self.batch_size] = block(batch).to(dtype)
        self.fits = self._n_rows() * per_row * out.element_size() <= self.budget
        return out

    def tensors(self, split: Split, train_idx: torch.Tensor, val_idx: torch.Tensor | None = None) -> Tensors:
        """Cached inputs of one run (its training subset, validation and test); ``val_idx`` (rows of the
        training split, inside the cached subsets) replaces the validation split when given."""
        def rows(idx):
            return self.parts["train"][torch.searchsorted(self.train_rows, idx).to(self.device)]

        x_val, y_val = ((self.parts["val"], split.y_val) if val_idx is None
                        else (rows(val_idx), split.y_train[val_idx]))
        return Tensors(rows(train_idx), split.y_train[train_idx].to(self.device), x_val, y_val.to(self.device),
                       self.parts["test"], split.y_test.to(self.device))


def cache_bytes_estimate(pretrained: CustomCNN, n_rows: int, k: int) -> int:
    """fp32 bytes of the cached activations of ``n_rows`` inputs after block k−1."""
    x = torch.zeros(1, pretrained.in_channels, pretrained.image_size, pretrained.image_size)
    with torch.no_grad():
        for block in pretrained.blocks[:k]:
            x = block(x)
    return n_rows * x[0].numel() * 4


# ----------------------------------------------------------------------------- the grid
class Study:
    """One transfer study: a config, its data, its pretrained model and its results store."""

    def __init__(self, cfg: StudyConfig, root: str | Path = ".", verbose: bool = True,
                 record_history: bool = False):
        # The data is checked (and read) only when a run or the pretraining needs it: summarising a
        # finished grid works on a machine without the dataset.
        self.cfg = cfg.validate(check_data=False)
        self.root = Path(root)
        self.verbose = verbose
        self.record_history = record_history  # rows then carry per-epoch train/val loss ("history")
        self._sources: dict[str, CustomCNN] = {}
        self.device = cfg.resolved_device()
        self._splits: tuple[Split, Split] | None = None
        self.store = ResultsStore(self.store_path())
        self._pretrained: CustomCNN | None = None
        self._pretrained_b: CustomCNN | None = None
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
                                 **_data_keys(c, {c.target_dataset}), **protocol_keys(c)))

    def store_path(self) -> Path:
        slug = (f"{self.cfg.source_dataset}{''.join(map(str, self.cfg.pre_train_classes))}_to_"
                f"{self.cfg.target_dataset}{''.join(map(str, self.cfg.fine_tune_classes))}")
        return self.root / self.cfg.results_dir / f"{slug}_{self.results_fingerprint()}.jsonl"

    @property
    def pretrained(self) -> CustomCNN:
        if self._pretrained is None:
            self._pretrained, self.pretrain_info = pretrain(self.cfg, self.source, self.root,
                                                            verbose=self.verbose)
            self._pretrained.eval()
        return self._pretrained

    @property
    def pretrained_b(self) -> CustomCNN:
        """The self-transfer source: the same network pretrained on the fine-tuning classes (B)."""
        if self._pretrained_b is None:
            cfg_b = self.cfg.replace(source_dataset=self.cfg.target_dataset,
                                     pre_train_classes=list(self.cfg.fine_tune_classes))
            self._pretrained_b, self.pretrain_info_b = pretrain(cfg_b, self.target, self.root,
                                                                verbose=self.verbose)
            self._pretrained_b.eval()
        return self._pretrained_b

    def source_model(self, source: str) -> CustomCNN:
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
            executor=None) -> "pandas.DataFrame":  # noqa: F821
        """Run every pending run of the grid (resuming a stopped one) and return all rows as a frame."""
        specs = self.plan(conditions)
        todo = self.pending(specs)
        if self.verbose:
            print(f"{self.cfg.study_name()}: {len(specs)} runs, {len(specs) - len(todo)} already in "
                  f"{self.store.path}, {len(todo)} to run")
        if todo:
            if executor is None:
                self._run_local(todo, progress)
            else:
                from .distributed import run_with_executor

                run_with_executor(self, todo, executor, progress)
        return self.frame([s.key for s in specs])

    def _run_local(self, todo: list[RunSpec], progress: bool) -> None:
        """Train pending runs here; a run another process has claimed (same store) is left to it."""
        bar = tqdm(total=len(todo), desc=self.cfg.study_name(), disable=not progress)
        for group in group_for_cache(todo):
            for spec, row in self.iter_group(group, claim=self.store.try_claim):
                self.store.append(row)
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
            n_rows = len(torch.unique(rows_needed)) + len(self.target.y_val) + len(self.target.y_test)
            budget = self.cfg.cache_budget_gb * 1e9
            if cache_bytes_estimate(source, n_rows, max(1, min(s.cut for s in group))) <= 2 * budget:
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

    def cache_source(self, cond: Condition) -> CustomCNN:
        """The network whose frozen blocks feed the prefix cache of a condition."""
        return self.source_model(cond.source)

    def init_seed(self, spec: RunSpec) -> int:
        """Seed of a run's fresh weights: shared by every condition and cut of one (fraction, repeat)."""
        return stable_seed("init", self.cfg.seed, spec.fraction, spec.repeat)

    def build_model(self, spec: RunSpec) -> CustomCNN:
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

    def train(self, spec: RunSpec, cache: PrefixCache | None = None) -> tuple[CustomCNN, dict[str, Any]]:
        """Train one run under the config's protocol; returns (the trained full model, its results row).

        With ``lr_grid`` the run is trained once per learning rate from the same initial weights and
        the one with the best accuracy on this run's own validation split is kept.
        """
        train_idx, val_idx = self.run_rows(spec.fraction, spec.repeat)
        best = None
        for lr in self.cfg.lr_grid or [self.cfg.lr_fine_tune]:
            model = self.build_model(spec).to(self.device)
            if cache is not None and spec.cut > 0:
                net, tensors = Suffix(model, spec.cut), cache.tensors(self.target, train_idx, val_idx)
            else:
                net, tensors = model, _split_tensors(self.target, self.device, train_idx, val_idx)
            result = self.fit(net, tensors, lr, spec)
            if best is None or result.val_acc > best[2].val_acc:
                best = (model, lr, result, len(tensors.y_val))
        model, lr, result, n_val = best
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
                         c.batch_size, order_seed, c.eval_batch_size, record_history=self.record_history)

    def row(self, spec: RunSpec, result, n_train: int, n_val: int | None = None,
            lr: float | None = None) -> dict[str, Any]:
        """The results row of a finished run (the CONTRIBUTING.md schema)."""
        c = self.cfg
        cond = CONDITIONS.get(spec.condition)
        freeze, reinit, truncate = (cond.freeze, cond.reinit, cond.truncate) if cond else (False, True, False)
        return {
            "key": spec.key, "study": c.study_name(), "source_dataset": c.source_dataset,
            "target_dataset": c.target_dataset, "pretrain_classes": list(c.pre_train_classes),
            "finetune_classes": list(c.fine_tune_classes), "condition": spec.condition,
            "freeze": freeze, "reinit": reinit, "truncate": truncate, "fraction": spec.fraction,
            "cut": spec.cut, "repeat": spec.repeat,
            "seed": self.init_seed(spec), "init": "crn", "lr": c.lr_fine_tune if lr is None else lr,
            "lr_grid": c.lr_grid, "protocol": c.protocol,
            "depth": c.depth, "num_channels": c.num_channels, "kernel_size": c.kernel_size,
            "activation": c.activation_function, "pooling": c.pooling_str(), "n_train": n_train,
            "n_val": len(self.target.y_val) if n_val is None else n_val,
            "train_acc": result.train_acc, "test_acc": result.test_acc,
            "val_acc": None if math.isnan(result.val_acc) else result.val_acc,  # None: no validation split
            "epochs": result.epochs, "best_epoch": result.best_epoch, "steps": result.steps,
            "best_step": result.best_step, "seconds": round(result.seconds, 4),
            "profile": c.profile, "device": self.device, "config_hash": self.results_fingerprint(),
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }

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
        """Write ``baselines_<tag>.json`` and ``cuts_<tag>.json`` in the original study's format."""
        from .results import export_original

        condition = condition or self.cfg.condition
        df = self.frame()
        df = df[df["condition"].isin(["baseline", condition])]
        out_dir = Path(out_dir or self.root / self.cfg.results_dir)
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


def run_study(cfg: StudyConfig, conditions: Iterable[str] = ("baseline", None), root: str | Path = ".",
              progress: bool = True, executor=None):
    """Convenience: build a Study, pretrain (or load) and run the grid; returns (study, frame)."""
    study = Study(cfg, root)
    _ = study.pretrained
    return study, study.run(conditions, progress, executor)
