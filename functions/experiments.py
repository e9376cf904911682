"""Pretraining, baselines and cut grids over fractions × cuts × repeats; resumable.

A grid is a list of :class:`RunSpec` (condition, fraction, cut, repeat). Runs are paired: for one
(fraction, repeat) every condition and cut trains on the same subset, and re-initialised layers and the
new head start from the same seed. With freezing on, blocks ``[0, k)`` are a fixed function, so their
outputs are computed once per cut (the frozen-prefix cache, derived cut by cut) and only the suffix trains.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
from tqdm.auto import tqdm

from .config import DATASET_SHAPES, StudyConfig
from .data import Split, balanced_subset, load_split, stable_seed, subset_seed
from .models import CustomCNN, Suffix, cut, load_state
from .store import ResultsStore
from .training import Tensors, fit

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
        """Cut 0 with re-init (or truncation) of a standard cut trains from scratch: the baseline."""
        return self.builder is None and (self.reinit or self.truncate)


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
    """Hash of everything that determines the pretrained weights."""
    keys = dict(cfg.model_fields(), source=cfg.source_dataset, classes=cfg.pre_train_classes,
                lr=cfg.lr_pretrain, epochs=cfg.num_train, patience=cfg.early_stop_patience,
                batch=cfg.batch_size, val=cfg.val_split, data_seed=cfg.generate_dataset_seed, seed=cfg.seed,
                train_limit=cfg.train_limit, test_limit=cfg.test_limit)
    return _fingerprint(keys)


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
        model = new_model(cfg, len(cfg.pre_train_classes))
        load_state(model, torch.load(path, map_location="cpu", weights_only=True))
        info = json.loads(info_path.read_text()) if info_path.exists() else {}
        if verbose:
            print(f"loaded pretrained model {path} (test acc {info.get('test_acc', float('nan')):.4f})")
        return model, info
    source = source or load_splits(cfg)[0]
    torch.manual_seed(stable_seed("pretrain", cfg.seed))
    model = new_model(cfg, len(cfg.pre_train_classes))
    device = cfg.resolved_device()
    model.to(device)
    result = fit(model, _split_tensors(source, device), cfg.lr_pretrain, cfg.num_train,
                 cfg.early_stop_patience, cfg.batch_size, stable_seed("pretrain-order", cfg.seed),
                 cfg.eval_batch_size, record_history=True)
    model.cpu()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    info = {"config": cfg.to_dict(), "train_acc": result.train_acc, "val_acc": result.val_acc,
            "test_acc": result.test_acc, "epochs": result.epochs, "seconds": result.seconds,
            "history": result.history}
    info_path.write_text(json.dumps(info, indent=2))
    if verbose:
        print(f"pretrained {path.name}: test acc {result.test_acc:.4f} after {result.epochs} epochs "
              f"({result.seconds:.1f} s)")
    return model, info


def _split_tensors(split: Split, device: str, train_idx: torch.Tensor | None = None) -> Tensors:
    x_train = split.x_train if train_idx is None else split.x_train[train_idx]
    y_train = split.y_train if train_idx is None else split.y_train[train_idx]
    return Tensors(x_train.to(device), y_train.to(device), split.x_val.to(device), split.y_val.to(device),
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

    def tensors(self, split: Split, train_idx: torch.Tensor) -> Tensors:
        """Cached inputs of one run (its training subset, validation and test)."""
        pos = torch.searchsorted(self.train_rows, train_idx)
        return Tensors(self.parts["train"][pos.to(self.device)], split.y_train[train_idx].to(self.device),
                       self.parts["val"], split.y_val.to(self.device),
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
        self.cfg = cfg.validate()
        self.root = Path(root)
        self.verbose = verbose
        self.record_history = record_history  # rows then carry per-epoch train/val loss ("history")
        self._sources: dict[str, CustomCNN] = {}
        self.device = cfg.resolved_device()
        self.source, self.target = load_splits(cfg)
        self.store = ResultsStore(self.store_path())
        self._pretrained: CustomCNN | None = None
        self.pretrain_info: dict[str, Any] = {}

    # -- paths and identity
    def results_fingerprint(self) -> str:
        """Hash of everything but the condition and the grid: rows with the same key are comparable."""
        c = self.cfg
        return _fingerprint(dict(pretrain=pretrain_fingerprint(c), target=c.target_dataset,
                                 classes=c.fine_tune_classes, lr=c.lr_fine_tune,
                                 reinit_both_dense=c.reinit_both_dense))

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
        if getattr(self, "_pretrained_b", None) is None:
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
        """Training-subset indices of (fraction, repeat): the same for every condition and cut."""
        return balanced_subset(self.target.y_train, fraction,
                               subset_seed(self.cfg.generate_dataset_seed, fraction, repeat))

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
        bar = tqdm(total=len(todo), desc=self.cfg.study_name(), disable=not progress)
        for group in group_for_cache(todo):
            for spec, row in self.iter_group(group):
                self.store.append(row)
                bar.update()
                bar.set_postfix(cond=spec.condition, f=spec.fraction, k=spec.cut, acc=f"{row['test_acc']:.3f}")
        bar.close()

    def iter_group(self, group: list[RunSpec]):
        """Run specs that share (condition, freeze) in cut order, reusing one prefix cache; yields rows."""
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
            if cache is not None:
                cache.advance_to(spec.cut)
                if not cache.fits:
                    cache = None
            yield spec, self.run_one(spec, cache)

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
        if spec.condition == "baseline":
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                return new_model(self.cfg, n_classes)
        cond = CONDITIONS[spec.condition]
        if cond.builder is not None:
            return cond.builder(self, spec)
        return cut(self.source_model(cond.source), spec.cut, n_classes, cond.freeze, cond.reinit,
                   cond.truncate, self.cfg.reinit_both_dense, seed=seed)

    def run_one(self, spec: RunSpec, cache: PrefixCache | None = None) -> dict[str, Any]:
        """Train one run and return its results row (not yet stored)."""
        return self.train(spec, cache)[1]

    def train(self, spec: RunSpec, cache: PrefixCache | None = None) -> tuple[CustomCNN, dict[str, Any]]:
        """Train one run; returns (the trained full model, its results row)."""
        train_idx = self.subset(spec.fraction, spec.repeat)
        model = self.build_model(spec).to(self.device)
        if cache is not None and spec.cut > 0:
            net, tensors = Suffix(model, spec.cut), cache.tensors(self.target, train_idx)
        else:
            net, tensors = model, _split_tensors(self.target, self.device, train_idx)
        result = fit(net, tensors, self.cfg.lr_fine_tune, self.cfg.num_train, self.cfg.early_stop_patience,
                     self.cfg.batch_size, stable_seed("order", self.cfg.seed, spec.fraction, spec.repeat),
                     self.cfg.eval_batch_size, record_history=self.record_history)
        row = self.row(spec, result, n_train=len(train_idx))
        if result.history:
            row["history"] = result.history
        return model, row

    def row(self, spec: RunSpec, result, n_train: int) -> dict[str, Any]:
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
            "seed": self.init_seed(spec), "lr": c.lr_fine_tune,
            "depth": c.depth, "num_channels": c.num_channels, "kernel_size": c.kernel_size,
            "activation": c.activation_function, "pooling": c.pooling_str(), "n_train": n_train,
            "train_acc": result.train_acc, "val_acc": result.val_acc, "test_acc": result.test_acc,
            "epochs": result.epochs, "best_epoch": result.best_epoch, "seconds": round(result.seconds, 4),
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
