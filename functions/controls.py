"""Sharper questions as conditions of the grid engine: self-transfer controls, surgical fine-tuning,
fine-tuning strategies, test-time augmentation; plus the tables that answer them.

Every condition here is registered with :func:`functions.experiments.register_condition`, so it runs
through the same :class:`~functions.experiments.Study` grid as FR/F/UR/U: same balanced subsets per
(fraction, repeat), same seeded heads, same frozen-prefix cache, same results store. Importing this
module registers them.

* **Yosinski et al. (2014) controls.** ``AnB`` / ``AnB+``: blocks ``[0, k)`` from the network pretrained
  on A (the pretraining classes), frozen / fine-tuned, blocks after the cut re-initialised. ``BnB`` /
  ``BnB+``: the same from a network pretrained on B (the fine-tuning classes themselves, on B's full
  training split). A BnB dip below the baseline means co-adapted blocks were split by the cut; AnB
  falling below BnB means A's features are too specific for B.
* **Surgical fine-tuning** (``surgical``): the whole A network with a new head; only block k (and the
  head) trains, every other block is frozen. Cut k = the tuned block; cut = number of blocks = head only.
* **Strategies**: ``baseline`` (from scratch), ``head_only`` (frozen A features + new head),
  ``full_finetune`` (every A block fine-tuned + new head) and ``random_frozen`` (frozen *random* blocks
  + trained head: the honest lower bound of "features", since a trained head alone already learns
  something from random projections).
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from .data import stable_seed
from .experiments import (CONDITIONS, Condition, RunSpec, Study, new_model, register_condition,
                          register_source)
from .models import cut
from .resnet import block_count
from .training import evaluate

YOSINSKI = ("AnB", "AnB+", "BnB", "BnB+")
SURGICAL = "surgical"
STRATEGIES = ("baseline", "random_frozen", "head_only", "full_finetune")
TTA_CHOICES = (None, "flip", "fivecrop")


# ----------------------------------------------------------------------------- cut points
def transfer_cuts(cfg) -> list[int]:
    """Cuts 0..blocks (the config's ``cuts`` when given); blocks, not conv layers, for a ResNet."""
    n = block_count(cfg)
    if cfg.cuts is None:
        return list(range(n + 1))
    return sorted(k for k in cfg.cuts if 0 <= k <= n)


def head_cut(cfg) -> list[int]:
    """The single cut after the last block (every block transferred)."""
    return [block_count(cfg)]


# ----------------------------------------------------------------------------- builders and sources
def surgical_model(study: Study, spec: RunSpec) -> nn.Module:
    """The whole pretrained A network with a new seeded head; only block ``spec.cut`` stays trainable.

    ``spec.cut == depth`` trains the head alone. Blocks ``[0, k)`` are frozen copies of A, so the prefix
    cache (built from A) serves them; blocks after k are frozen too and simply stay out of the optimizer.
    """
    source = study.source_model("A")
    model = cut(source, source.depth, len(study.cfg.fine_tune_classes), freeze=True, reinit=False,
                reinit_both_dense=study.cfg.reinit_both_dense, seed=study.init_seed(spec))
    if spec.cut < model.depth:
        model.blocks[spec.cut].requires_grad_(True)
    return model


def random_network(study: Study) -> nn.Module:
    """One randomly initialised network per study (seeded): the source of ``random_frozen``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(stable_seed("random-features", study.cfg.seed))
        return new_model(study.cfg, len(study.cfg.pre_train_classes))


register_source("random", random_network)

for _name, _freeze, _source, _text in (
        ("AnB", True, "A", "blocks [0,k) from A frozen, later blocks re-initialised (Yosinski AnB)"),
        ("AnB+", False, "A", "blocks [0,k) from A fine-tuned, later blocks re-initialised (AnB+)"),
        ("BnB", True, "B", "blocks [0,k) from a network trained on B itself, frozen (self-transfer BnB)"),
        ("BnB+", False, "B", "blocks [0,k) from the B network, fine-tuned (BnB+)")):
    register_condition(Condition(_name, freeze=_freeze, reinit=True, source=_source, cuts=transfer_cuts,
                                 description=_text))

register_condition(Condition(
    SURGICAL, freeze=True, reinit=False, source="A", builder=surgical_model, cuts=transfer_cuts,
    cacheable=True, description="whole A network, only block k (and the new head) trained; k=depth: head"))
register_condition(Condition(
    "head_only", freeze=True, reinit=False, source="A", cuts=head_cut,
    description="every A block frozen, new head trained (linear probe)"))
register_condition(Condition(
    "full_finetune", freeze=False, reinit=False, source="A", cuts=head_cut,
    description="every A block fine-tuned with a new head"))
register_condition(Condition(
    "random_frozen", freeze=True, reinit=False, source="random", cuts=head_cut,
    description="frozen randomly initialised blocks, trained head: the lower bound"))


# ----------------------------------------------------------------------------- tidy frames
def _require(df: pd.DataFrame, columns: Iterable[str]) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"df: missing columns {missing}; pass a frame from Study.run or load_results")


def with_baseline_at_cut0(df: pd.DataFrame, conditions: Sequence[str] = YOSINSKI) -> pd.DataFrame:
    """Rows of ``conditions`` plus, for each, the baseline rows relabelled as its cut 0.

    Cut 0 with re-initialisation *is* training from scratch, so the engine runs it once as the baseline;
    the Yosinski figure draws it as every curve's first point. The baseline rows themselves stay too.
    """
    _require(df, ("condition", "cut", "fraction", "repeat", "test_acc"))
    base = df[df["condition"] == "baseline"]
    parts = [df[df["condition"].isin(conditions)], base]
    for name in conditions:
        if CONDITIONS.get(name) is not None and CONDITIONS[name].cut0_is_baseline:
            if not ((df["condition"] == name) & (df["cut"] == 0)).any():
                parts.append(base.assign(condition=name, cut=0, arm="cut 0"))
    out = pd.concat(parts, ignore_index=True)
    out["arm"] = ["baseline" if c == -1 else f"cut {c}" for c in out["cut"]]
    return out


def accuracy_by_cut(df: pd.DataFrame, conditions: Sequence[str] = YOSINSKI, metric: str = "test_acc",
                    n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Median ``metric`` with a 95 % bootstrap CI per (fraction, condition, cut), baseline included.

    The numbers behind the Yosinski figure: columns fraction, condition, cut, n, median, low, high.
    """
    from .stats import bootstrap_ci

    rows = with_baseline_at_cut0(df, conditions)
    rows = rows.assign(group=rows["condition"] + "|" + rows["cut"].astype(str))
    ci = bootstrap_ci(rows, metric=metric, arm_col="group", by=("fraction",), n_boot=n_boot, seed=seed)
    ci[["condition", "cut"]] = ci["arm"].str.split("|", expand=True)
    ci["cut"] = ci["cut"].astype(int)
    ci = ci.rename(columns={"estimate": "median"})
    order = {name: i for i, name in enumerate(["baseline", *conditions])}
    ci = ci.sort_values(["fraction", "condition", "cut"], key=lambda s: s.map(order) if s.name == "condition"
                        else s)
    return ci[["fraction", "condition", "cut", "n", "median", "low", "high"]].reset_index(drop=True)


def effects_vs_baseline(df: pd.DataFrame, conditions: Sequence[str] = YOSINSKI, metric: str = "test_acc",
                        n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Paired effect of every (condition, cut) against the from-scratch baseline on the same subsets.

    Per (fraction, condition): median paired difference with a bootstrap CI and Holm-corrected Wilcoxon
    p-value over that condition's cuts (functions.stats.effect_vs_baseline).
    """
    from .stats import effect_vs_baseline

    _require(df, ("condition", "cut", "fraction", "repeat", metric))
    parts = []
    base = df[df["condition"] == "baseline"].assign(arm="baseline")
    for name in conditions:
        own = df[(df["condition"] == name) & (df["cut"] > 0)]
        own = own.assign(arm=[f"cut {c}" for c in own["cut"]])
        if own.empty:
            continue
        part = pd.concat([own, base]).assign(setting=name)
        parts.append(effect_vs_baseline(part, metric=metric, by=("setting", "fraction"), n_boot=n_boot,
                                        seed=seed))
    if not parts:
        raise ValueError(f"df holds no rows of the conditions {list(conditions)} with cut > 0")
    out = pd.concat(parts, ignore_index=True).rename(columns={"setting": "condition"})
    out["cut"] = out["arm"].str.removeprefix("cut ").astype(int)
    return out[["condition", "fraction", "cut", "n_pairs", "median_diff", "low", "high", "p_holm",
                "significant"]]


def block_label(cut_point: int, n_blocks: int) -> str:
    """Surgical arm label: ``block k`` or ``head only`` (cut = number of blocks)."""
    return "head only" if cut_point == n_blocks else f"block {cut_point}"


def surgical_summary(df: pd.DataFrame, metric: str = "test_acc", alpha: float = 0.05) -> pd.DataFrame:
    """Per (study, fraction) and tuned block: median accuracy, gain over head-only, rank and rank group.

    ``group_label == "a"`` marks the best block and those not significantly worse than it (paired
    Wilcoxon, Holm-corrected within the fraction). Columns: study, fraction, cut, tuned, n, median,
    gain_vs_head, rank, group_label, best.
    """
    from .stats import rank_groups

    _require(df, ("study", "condition", "cut", "fraction", "repeat", metric))
    rows = df[df["condition"] == SURGICAL].copy()
    if rows.empty:
        raise ValueError("df holds no 'surgical' rows; run Study.run(('surgical',)) first")
    rows["arm"] = [f"cut {c}" for c in rows["cut"]]
    ranked = rank_groups(rows, metric=metric, by=("study", "fraction"), alpha=alpha)
    ranked["cut"] = ranked["arm"].str.removeprefix("cut ").astype(int)
    n_blocks = rows.groupby("study")["cut"].max()  # the head-only cut is always in the grid
    ranked["tuned"] = [block_label(c, n_blocks[s]) for s, c in zip(ranked["study"], ranked["cut"])]
    head = ranked[ranked["cut"] == ranked["study"].map(n_blocks)].set_index(["study", "fraction"])["median"]
    ranked["gain_vs_head"] = ranked["median"] - [head.get((s, f), np.nan)
                                                 for s, f in zip(ranked["study"], ranked["fraction"])]
    ranked["best"] = ranked["rank"] == 1
    columns = ["study", "fraction", "cut", "tuned", "n", "median", "gain_vs_head", "rank", "group_label",
               "best"]
    return ranked.sort_values(["study", "fraction", "cut"])[columns].reset_index(drop=True)


def best_blocks(summary: pd.DataFrame) -> pd.DataFrame:
    """One row per (study, fraction): the best tuned block and every block tied with it (group a)."""
    _require(summary, ("study", "fraction", "tuned", "rank", "group_label", "median"))
    records = []
    for (study, fraction), rows in summary.groupby(["study", "fraction"], sort=True):
        best = rows.sort_values(["rank", "cut"]).iloc[0]
        tied = rows[rows["group_label"] == "a"]["tuned"].tolist()
        records.append({"study": study, "fraction": fraction, "best": best["tuned"],
                        "best_median": best["median"], "not_significantly_worse": ", ".join(tied)})
    return pd.DataFrame(records)


def strategy_summary(df: pd.DataFrame, strategies: Sequence[str] = STRATEGIES,
                     metric: str = "test_acc") -> pd.DataFrame:
    """Median accuracy, bootstrap CI, rank group and paired effect vs scratch per (fraction, strategy)."""
    from .stats import summarize

    _require(df, ("condition", "fraction", "repeat", metric))
    rows = df[df["condition"].isin(strategies)].assign(study="strategies")
    rows = rows.assign(arm=rows["condition"])
    table = summarize(rows, metric=metric, by=("fraction",))
    order = {name: i for i, name in enumerate(strategies)}
    return (table.rename(columns={"arm": "strategy"})
            .sort_values(["fraction", "strategy"], key=lambda s: s.map(order) if s.name == "strategy" else s)
            .reset_index(drop=True))


def histories(df: pd.DataFrame, conditions: Sequence[str] = STRATEGIES) -> pd.DataFrame:
    """Per-epoch curves of rows that recorded them, long format.

    Columns: condition, fraction, cut, repeat, epoch (1-based), train_loss, val_loss, val_acc.
    Rows without a ``history`` (runs stored before ``record_history`` was on) are skipped.
    """
    _require(df, ("condition", "fraction", "cut", "repeat"))
    if "history" not in df.columns:
        raise ValueError("df has no 'history' column; run the grid with Study(..., record_history=True)")
    records = []
    for row in df[df["condition"].isin(conditions)].itertuples(index=False):
        history = row.history
        if not isinstance(history, dict) or not history.get("val_loss"):
            continue
        for epoch, values in enumerate(zip(history["train_loss"], history["val_loss"], history["val_acc"]), 1):
            records.append({"condition": row.condition, "fraction": row.fraction, "cut": row.cut,
                            "repeat": row.repeat, "epoch": epoch, "train_loss": values[0],
                            "val_loss": values[1], "val_acc": values[2]})
    return pd.DataFrame(records, columns=["condition", "fraction", "cut", "repeat", "epoch", "train_loss",
                                          "val_loss", "val_acc"])


def curves_at(df: pd.DataFrame, fraction: float, repeat: int = 0,
              conditions: Sequence[str] = STRATEGIES) -> dict[str, dict[str, list[float]]]:
    """``{condition: history}`` of one (fraction, repeat): what ``plots.learning_curves`` draws."""
    _require(df, ("condition", "fraction", "repeat", "history"))
    picked = df[np.isclose(df["fraction"].astype(float), fraction) & (df["repeat"] == repeat)]
    out = {}
    for name in conditions:
        rows = picked[picked["condition"] == name]
        found = [h for h in rows["history"] if isinstance(h, dict) and h.get("val_loss")]
        if found:
            out[name] = found[0]
    if not out:
        raise ValueError(f"no recorded histories at fraction={fraction}, repeat={repeat} for {list(conditions)}; "
                         "run the grid with Study(..., record_history=True)")
    return out


def surgical_plot(summary: pd.DataFrame):
    """Gain of tuning one block over training the head alone, per tuned block; a line per fraction and
    one panel per study (class split vs domain shift side by side); the best block of each line ringed."""
    import matplotlib.pyplot as plt

    from .plots import fraction_label, use_style

    _require(summary, ("study", "fraction", "cut", "tuned", "gain_vs_head", "best"))
    use_style()
    studies = sorted(summary["study"].unique())
    fig, axes = plt.subplots(1, len(studies), figsize=(4.6 * len(studies), 3.8), squeeze=False,
                             layout="constrained", sharey=True)
    for ax, study in zip(axes[0], studies):
        rows = summary[summary["study"] == study].sort_values("cut")
        for fraction, line in rows.groupby("fraction"):
            drawn = ax.plot(line["cut"], line["gain_vs_head"], marker="o", label=fraction_label(fraction))
            best = line[line["best"]]
            ax.scatter(best["cut"], best["gain_vs_head"], s=140, facecolors="none",
                       edgecolors=drawn[0].get_color(), linewidths=1.5)
        ax.axhline(0, color="0.3", linewidth=0.8, linestyle="--")
        ticks = rows.drop_duplicates("cut")
        ax.set_xticks(ticks["cut"], [t.replace("block ", "") for t in ticks["tuned"]])
        ax.set_xlabel("block fine-tuned (others frozen)")
        ax.set_title(study)
    axes[0, 0].set_ylabel("median test acc − head only")
    axes[0, -1].legend(title="fraction", fontsize=7)
    fig.suptitle("Surgical fine-tuning: which single block to tune (ring: best median)")
    return fig


# ----------------------------------------------------------------------------- test-time augmentation
def tta_accuracies(net: nn.Module, x: torch.Tensor, y: torch.Tensor, modes: Sequence[str | None] = TTA_CHOICES,
                   batch_size: int = 2048) -> dict[str, float]:
    """Accuracy of ``net`` on ``(x, y)`` without TTA (``"none"``) and with each TTA mode."""
    out = {}
    for mode in modes:
        if mode not in TTA_CHOICES:
            raise ValueError(f"modes: {mode!r} is unknown; allowed: {list(TTA_CHOICES)}")
        out[mode or "none"] = evaluate(net, x, y, batch_size, tta=mode)
    return out


def tta_comparison(study: Study, conditions: Sequence[str], fraction: float, repeats: Iterable[int],
                   modes: Sequence[str | None] = TTA_CHOICES) -> pd.DataFrame:
    """Train each condition's runs at one fraction and report test accuracy with and without TTA.

    The runs are retrained (the store keeps rows, not weights) with the same seeds as the grid, so the
    ``none`` column reproduces the stored test accuracy. Columns: condition, cut, repeat, tta, test_acc.
    """
    records, wanted = [], set(repeats)
    for name in conditions:
        specs = [s for s in study.plan((name,)) if s.fraction == fraction and s.repeat in wanted]
        for spec in specs:
            model, _ = study.train(spec)
            model.eval()
            for mode, acc in tta_accuracies(model, study.target.x_test, study.target.y_test, modes,
                                            study.cfg.eval_batch_size).items():
                records.append({"condition": name, "cut": spec.cut, "repeat": spec.repeat, "tta": mode,
                                "test_acc": acc})
    return pd.DataFrame(records, columns=["condition", "cut", "repeat", "tta", "test_acc"])
