"""Architecture search with Optuna (TPE sampler, median pruning) instead of a hosted sweep service.

The space: depth, width, filter organisation (constant / doubling / halving per layer), a kernel size
per layer, pooling (max / avg / strided conv / none, every n layers), activation, batch norm, dropout
and learning rate. Each trial trains a :class:`SearchCNN` with Adam for a few epochs on a seeded data
subset and reports validation accuracy per epoch, so the median pruner can stop poor trials early.
The best trial is exported as the nearest :class:`~functions.engine.config.StudyConfig`, with a note for every
choice StudyConfig cannot express.
"""
from __future__ import annotations

import statistics
import time
from collections import Counter

import matplotlib.pyplot as plt
import optuna
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from functions.engine.config import StudyConfig
from functions.engine.data import Split, load_split, stable_seed
from functions.engine.datasets import DATASET_SHAPES, NUM_CLASSES
from functions.engine.errors import ConfigError
from functions.engine.networks import ACTIVATION_CLASSES, count_parameters
from functions.engine.training import channels_last, evaluate

ACTIVATIONS = ("ReLU", "GELU", "SiLU", "LeakyReLU", "Mish")
ORGANISATIONS = ("constant", "doubling", "halving")
POOLINGS = ("none", "max", "avg", "strided")
MIN_CHANNELS, MAX_CHANNELS = 4, 128

# Settings per profile: smoke is three tiny trials; cpu is a real search sized for 2 CPU cores.
PROFILES = {
    "smoke": dict(n_trials=3, epochs=2, train_limit=600, test_limit=500, max_depth=3, widths=[4, 8],
                  kernels=[3, 5], max_channels=16, batch_size=128),
    # cpu caps channels at 32 and kernels at 5×5: one unpooled 5-layer trial then stays near a minute
    "cpu": dict(n_trials=25, epochs=3, train_limit=5000, test_limit=None, max_depth=5,
                widths=[8, 16], kernels=[3, 5], max_channels=32, batch_size=128),
    "paper": dict(n_trials=100, epochs=10, train_limit=None, test_limit=None, max_depth=6,
                  widths=[16, 32, 64], kernels=[3, 5, 7], max_channels=128, batch_size=128),
}


def profile_settings(profile: str) -> dict:
    """The search settings of a profile (smoke / cpu / paper)."""
    if profile not in PROFILES:
        raise ValueError(f"profile {profile!r} is unknown; allowed: {list(PROFILES)}")
    return {k: (list(v) if isinstance(v, list) else v) for k, v in PROFILES[profile].items()}


# ----------------------------------------------------------------------------- search space
def channel_plan(depth: int, width: int, organisation: str, max_channels: int = MAX_CHANNELS) -> list[int]:
    """Channels of every layer: ``width`` throughout, doubling from it, or halving from it, clamped to
    ``[MIN_CHANNELS, max_channels]``."""
    if organisation not in ORGANISATIONS:
        raise ValueError(f"organisation {organisation!r} is unknown; allowed: {list(ORGANISATIONS)}")
    factor = {"constant": 1.0, "doubling": 2.0, "halving": 0.5}[organisation]
    return [int(min(max_channels, max(MIN_CHANNELS, round(width * factor ** i)))) for i in range(depth)]


def spec_channels(spec: dict) -> list[int]:
    """Channels of every layer of a spec."""
    return channel_plan(spec["depth"], spec["width"], spec["organisation"],
                        spec.get("max_channels", MAX_CHANNELS))


def suggest_spec(trial: optuna.Trial, max_depth: int, widths: list[int], kernels: list[int],
                 max_channels: int = MAX_CHANNELS) -> dict:
    """Draw one architecture + optimiser setting from the search space."""
    depth = trial.suggest_int("depth", 2, max_depth)
    spec = dict(
        depth=depth,
        width=trial.suggest_categorical("width", list(widths)),
        organisation=trial.suggest_categorical("organisation", list(ORGANISATIONS)),
        kernels=[trial.suggest_categorical(f"kernel_{i}", list(kernels)) for i in range(depth)],
        pooling=trial.suggest_categorical("pooling", list(POOLINGS)),
        activation=trial.suggest_categorical("activation", list(ACTIVATIONS)),
        batch_norm=trial.suggest_categorical("batch_norm", [False, True]),
        dropout=trial.suggest_float("dropout", 0.0, 0.5),
        lr=trial.suggest_float("lr", 1e-4, 1e-2, log=True),
        max_channels=max_channels,
    )
    spec["pool_every"] = trial.suggest_int("pool_every", 1, 3) if spec["pooling"] != "none" else 1
    return spec


def spec_from_params(params: dict, max_channels: int = MAX_CHANNELS) -> dict:
    """Rebuild the spec of a finished trial from its Optuna params (``max_channels`` of the search)."""
    depth = params["depth"]
    spec = {k: params[k] for k in ("depth", "width", "organisation", "pooling", "activation",
                                   "batch_norm", "dropout", "lr")}
    spec["kernels"] = [params[f"kernel_{i}"] for i in range(depth)]
    spec["pool_every"] = params.get("pool_every", 1)
    spec["max_channels"] = max_channels
    return spec


# ----------------------------------------------------------------------------- model
class SearchCNN(nn.Module):
    """conv ("same" padding, stride 2 where it replaces pooling) → [BN] → activation → [pool] →
    [dropout] per layer, then flatten → linear.

    Pooling (or the strided conv) follows every ``pool_every``-th layer while the maps are at least
    2 px wide, the same rule StudyConfig's validation applies.
    """

    def __init__(self, spec: dict, in_channels: int, image_size: int, num_classes: int):
        super().__init__()
        layers, size, c_in = [], image_size, in_channels
        for i, (c_out, k) in enumerate(zip(spec_channels(spec), spec["kernels"])):
            pools = spec["pooling"] != "none" and (i + 1) % spec["pool_every"] == 0 and size >= 2
            stride = 2 if pools and spec["pooling"] == "strided" else 1
            layers.append(nn.Conv2d(c_in, c_out, k, stride=stride, padding=k // 2))
            if spec["batch_norm"]:
                layers.append(nn.BatchNorm2d(c_out))
            layers.append(ACTIVATION_CLASSES[spec["activation"]]())
            if pools and spec["pooling"] in ("max", "avg"):
                layers.append(nn.MaxPool2d(2) if spec["pooling"] == "max" else nn.AvgPool2d(2))
            if pools:
                size = (size - 2) // 2 + 1 if spec["pooling"] != "strided" else (size - 1) // 2 + 1
            if spec["dropout"] > 0:
                layers.append(nn.Dropout(spec["dropout"]))
            c_in = c_out
        self.features = nn.Sequential(*layers)
        with torch.no_grad():
            n_features = self.features(torch.zeros(1, in_channels, image_size, image_size)).numel()
        self.head = nn.Linear(n_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))


# ----------------------------------------------------------------------------- training
def train_epochs(model: nn.Module, split: Split, lr: float, epochs: int, batch_size: int, seed: int,
                 on_epoch=None) -> list[float]:
    """Adam on ``split.x_train``; validation accuracy after every epoch (passed to ``on_epoch``)."""
    gen = torch.Generator().manual_seed(seed)
    channels_last(model)  # before the optimizer sees the parameters, the layout evaluate() uses
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    device = next(model.parameters()).device
    val_accs = []
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(split.y_train), generator=gen)
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            loss = F.cross_entropy(model(split.x_train[idx].to(device)), split.y_train[idx].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        val_accs.append(evaluate(model, split.x_val, split.y_val))
        if on_epoch is not None:
            on_epoch(epoch, val_accs[-1])
    return val_accs


def make_objective(split: Split, in_channels: int, image_size: int, epochs: int, max_depth: int,
                   widths: list[int], kernels: list[int], batch_size: int, seed: int, device: str,
                   max_channels: int = MAX_CHANNELS):
    """The Optuna objective: best validation accuracy of a trial; reports each epoch for pruning."""

    def objective(trial: optuna.Trial) -> float:
        spec = suggest_spec(trial, max_depth, widths, kernels, max_channels)
        torch.manual_seed(stable_seed("trial", seed, trial.number))  # same weights for the same trial
        model = SearchCNN(spec, in_channels, image_size, split.num_classes).to(device)
        trial.set_user_attr("n_params", count_parameters(model, trainable_only=True))
        trial.set_user_attr("channels", spec_channels(spec))
        start = time.perf_counter()

        def report(epoch: int, acc: float) -> None:
            trial.report(acc, epoch)
            trial.set_user_attr("epochs_run", epoch + 1)
            trial.set_user_attr("seconds", time.perf_counter() - start)
            if trial.should_prune():
                raise optuna.TrialPruned()

        accs = train_epochs(model, split, spec["lr"], epochs, batch_size,
                            stable_seed("order", seed, trial.number), report)
        return max(accs)

    return objective


def run_search(dataset: str, n_trials: int, epochs: int, train_limit: int | None = None,
               test_limit: int | None = None, max_depth: int = 5, widths=(8, 16, 32), kernels=(3, 5, 7),
               max_channels: int = MAX_CHANNELS, batch_size: int = 128, seed: int = 0, data_root=None,
               device: str = "cpu", val_split: float = 0.2, progress: bool = True) -> tuple[optuna.Study, Split]:
    """TPE search with median pruning on all classes of ``dataset``; returns the study and the split.

    Reproducible for a seed: the sampler, every trial's initial weights and batch order are seeded.
    """
    if dataset not in DATASET_SHAPES:
        raise ValueError(f"dataset {dataset!r} is unknown; allowed: {list(DATASET_SHAPES)}")
    if n_trials < 1 or epochs < 1:
        raise ValueError(f"n_trials and epochs must be >= 1, got {n_trials!r} and {epochs!r}")
    in_channels, image_size, _ = DATASET_SHAPES[dataset]
    split = load_split(dataset, list(range(NUM_CLASSES[dataset])), root=data_root, val_split=val_split,
                       seed=seed, train_limit=train_limit, test_limit=test_limit)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(1, min(8, n_trials // 3)))
    pruner = optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)
    study = optuna.create_study(direction="maximize", sampler=sampler, pruner=pruner,
                                study_name=f"archsearch-{dataset}-seed{seed}")
    objective = make_objective(split, in_channels, image_size, epochs, max_depth, list(widths),
                               list(kernels), batch_size, seed, device, max_channels)
    bar = tqdm(total=n_trials, desc="trials", disable=not progress)
    study.optimize(objective, n_trials=n_trials, callbacks=[lambda s, t: bar.update(1)])
    bar.close()
    return study, split


# ----------------------------------------------------------------------------- results
def trials_table(study: optuna.Study) -> pd.DataFrame:
    """One row per trial: state, validation accuracy, parameters, size, epochs run and seconds."""
    rows = []
    for t in study.trials:
        row = dict(trial=t.number, state=t.state.name, val_acc=t.value if t.value is not None else
                   (max(t.intermediate_values.values()) if t.intermediate_values else float("nan")),
                   n_params=t.user_attrs.get("n_params"), epochs_run=t.user_attrs.get("epochs_run"),
                   seconds=t.user_attrs.get("seconds"),
                   channels="-".join(str(c) for c in t.user_attrs.get("channels", [])))
        row.update({k: v for k, v in t.params.items() if not k.startswith("kernel_")})
        row["kernels"] = "-".join(str(t.params[f"kernel_{i}"]) for i in range(t.params["depth"]))
        rows.append(row)
    return pd.DataFrame(rows)


def param_importances(study: optuna.Study, seed: int = 0) -> pd.Series:
    """fANOVA importance of each hyperparameter over completed trials (empty with fewer than 2)."""
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if len(complete) < 2:
        return pd.Series(dtype=float, name="importance")
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=seed)
    importances = optuna.importance.get_param_importances(study, evaluator=evaluator)
    return pd.Series(importances, name="importance").sort_values(ascending=False)


def to_study_config(spec: dict, dataset: str, **overrides) -> tuple[StudyConfig, list[str]]:
    """The nearest StudyConfig to a searched spec, and a note for every choice it cannot express."""
    channels = spec_channels(spec)
    counts = Counter(spec["kernels"])
    kernel = max(sorted(counts), key=lambda k: counts[k])  # most common; ties go to the smaller kernel
    fields = dict(source_dataset=dataset, target_dataset=dataset, depth=spec["depth"],
                  num_channels=int(round(statistics.median(channels))), kernel_size=kernel,
                  activation_function=spec["activation"], use_pooling=spec["pooling"] != "none",
                  pooling_every_n_layers=spec["pool_every"], pooling_stride=2,
                  lr_pretrain=spec["lr"], lr_fine_tune=spec["lr"])
    fields.update(overrides)
    notes = []
    if spec["organisation"] != "constant":
        notes.append(f"filter organisation {spec['organisation']} ({channels}): StudyConfig has one "
                     f"width; num_channels = median {fields['num_channels']}")
    if len(counts) > 1:
        notes.append(f"kernels per layer {spec['kernels']}: StudyConfig has one kernel_size; "
                     f"kernel_size = most common {kernel}")
    if spec["pooling"] in ("max", "strided"):
        notes.append(f"pooling {spec['pooling']}: StudyConfig pools by 2×2 average; mapped to avg pooling")
    if spec["batch_norm"]:
        notes.append("batch norm: StudyConfig's CustomCNN has none; dropped")
    if spec["dropout"] > 0:
        notes.append(f"dropout {spec['dropout']:.3f}: StudyConfig's CustomCNN has none; dropped")
    cfg = StudyConfig.from_dict(fields)
    while cfg.use_pooling and not _pooling_fits(cfg):
        # SearchCNN skips a pool once maps are 1 px; StudyConfig rejects that, so pool less often.
        cfg = cfg.replace(pooling_every_n_layers=cfg.pooling_every_n_layers + 1)
    if cfg.pooling_every_n_layers != fields["pooling_every_n_layers"]:
        notes.append(f"pooling every {spec['pool_every']} layers would shrink the maps below 1 px "
                     f"(the search skipped those pools); pooling_every_n_layers = {cfg.pooling_every_n_layers}")
    return cfg, notes


def _pooling_fits(cfg: StudyConfig) -> bool:
    """Whether StudyConfig's validation accepts the pooling of ``cfg``."""
    try:
        cfg.validate(check_data=False)
    except ConfigError as err:
        if "pooling" in str(err):
            return False
        raise
    return True


def retrain_and_test(model: nn.Module, split: Split, lr: float, epochs: int, batch_size: int = 128,
                     seed: int = 0) -> dict:
    """Train ``model`` like a trial and report final validation and test accuracy (test once)."""
    start = time.perf_counter()
    val_accs = train_epochs(model, split, lr, epochs, batch_size, seed)
    return dict(val_acc=val_accs[-1], test_acc=evaluate(model, split.x_test, split.y_test),
                n_params=count_parameters(model, trainable_only=True), seconds=time.perf_counter() - start)


# ----------------------------------------------------------------------------- plots
def plot_accuracy_vs_parameters(table: pd.DataFrame, ax=None):
    """Validation accuracy against parameter count, completed and pruned trials marked apart."""
    ax = ax or plt.subplots(figsize=(6, 4))[1]
    for state, marker in (("COMPLETE", "o"), ("PRUNED", "x")):
        part = table[table["state"] == state]
        ax.scatter(part["n_params"], part["val_acc"], marker=marker, label=state.lower())
    best = table.loc[table["val_acc"].idxmax()]
    ax.annotate(f"best #{int(best['trial'])}", (best["n_params"], best["val_acc"]),
                textcoords="offset points", xytext=(5, -12))
    ax.set(xscale="log", xlabel="parameters", ylabel="validation accuracy (best epoch)",
           title="Accuracy vs size")
    ax.legend()
    return ax


def plot_importances(importances: pd.Series, ax=None):
    """Horizontal bars of fANOVA importance per hyperparameter."""
    ax = ax or plt.subplots(figsize=(6, 4))[1]
    importances.sort_values().plot.barh(ax=ax)
    ax.set(xlabel="fANOVA importance (sums to 1)", title="Hyperparameter importance")
    return ax


def plot_history(table: pd.DataFrame, ax=None):
    """Accuracy of each trial in order, with the best so far."""
    ax = ax or plt.subplots(figsize=(6, 4))[1]
    ax.scatter(table["trial"], table["val_acc"], c=(table["state"] == "PRUNED").map({True: "grey",
                                                                                   False: "C0"}))
    ax.plot(table["trial"], table["val_acc"].cummax(), color="C1", label="best so far")
    ax.set(xlabel="trial", ylabel="validation accuracy", title="Search history (grey: pruned)")
    ax.legend()
    return ax


def search_summary(study: optuna.Study) -> dict:
    """Counts of trial states and the best trial's number and value."""
    states = Counter(t.state.name for t in study.trials)
    return dict(n_trials=len(study.trials), complete=states.get("COMPLETE", 0),
                pruned=states.get("PRUNED", 0), best_trial=study.best_trial.number,
                best_val_acc=study.best_value, best_params=study.best_params)

