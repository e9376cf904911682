"""Figures and numbers of one trained network: effective rank of its weights, per-class accuracy, its
mistakes, and learning curves (the study's results figures are in ``figures``).
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from functions.analysis.figures_common import BASELINE_COLOR, titled, use_style
from functions.engine.config import StudyConfig
from functions.engine.datasets import check_available
from functions.engine.errors import ConfigError
from functions.engine.networks import load_state, new_model
from functions.engine.data import load_splits
from functions.engine.training import class_accuracies, labels_array, predict


def effective_rank_of(matrix) -> float:
    """Effective rank (Roy & Vetterli 2007): exp of the Shannon entropy of the normalised singular values.

    Identity n×n → n, any rank-1 matrix → 1, the zero matrix → 0.
    """
    if hasattr(matrix, "detach"):
        matrix = matrix.detach().cpu().double().numpy()
    array = np.asarray(matrix, dtype=float)
    if array.ndim != 2 or 0 in array.shape:
        raise ValueError(f"matrix must be a non-empty 2-D array, got shape {array.shape}")
    singular = np.linalg.svd(array, compute_uv=False)
    total = singular.sum()
    if total <= 0:
        return 0.0
    p = singular[singular > 0] / total
    return float(np.exp(-(p * np.log(p)).sum()))


def _layer_name(key: str) -> str:
    """``blocks.0.conv.weight`` → ``conv0``, ``head.fc.weight`` → ``fc``; other names without ``.weight``."""
    name = key[: -len(".weight")] if key.endswith(".weight") else key
    match = re.fullmatch(r"blocks\.(\d+)\.conv", name)
    if match:
        return f"conv{match.group(1)}"
    return re.sub(r"^head\.", "", name)


def effective_ranks(model_or_state_dict) -> pd.DataFrame:
    """Effective rank of every conv (weight as out × in·k·k) and linear weight.

    Columns: layer, key, kind (conv/linear), shape, max_rank, effective_rank.
    """
    state = model_or_state_dict.state_dict() if hasattr(model_or_state_dict, "state_dict") else model_or_state_dict
    if not isinstance(state, Mapping):
        raise ValueError("model_or_state_dict must be a torch module or a state dict (name → tensor), "
                         f"got {type(model_or_state_dict).__name__}")
    records = []
    for key, weight in state.items():
        shape = tuple(getattr(weight, "shape", ()))
        if not key.endswith("weight") or len(shape) < 2:
            continue  # biases and normalisation scales have no rank
        matrix = weight.reshape(shape[0], -1)
        records.append({"layer": _layer_name(key), "key": key, "kind": "linear" if len(shape) == 2 else "conv",
                        "shape": shape, "max_rank": int(min(matrix.shape)),
                        "effective_rank": effective_rank_of(matrix)})
    if not records:
        raise ValueError("model_or_state_dict holds no conv or linear weights (keys ending in 'weight', ≥2-D)")
    return pd.DataFrame(records)


def effective_rank(model_or_state_dict) -> Figure:
    """Bar per layer: effective rank of its weight, with the largest possible rank as an outline."""
    use_style()
    table = effective_ranks(model_or_state_dict)
    fig, ax = plt.subplots(figsize=(max(4.5, 0.7 * len(table) + 2), 3.8), layout="constrained")
    x = np.arange(len(table))
    colors = ["tab:blue" if kind == "conv" else "tab:orange" for kind in table["kind"]]
    ax.bar(x, table["max_rank"], color="none", edgecolor="0.5", linestyle="--", label="max rank")
    ax.bar(x, table["effective_rank"], color=colors, label="effective rank")
    for xi, value in zip(x, table["effective_rank"]):
        ax.text(xi, value, f"{value:.1f}", ha="center", va="top", fontsize=8, color="white")
    ax.set_xticks(x)
    ax.set_xticklabels(table["layer"], rotation=45 if len(table) > 8 else 0)
    ax.set_ylabel("effective rank")
    ax.legend(fontsize=8)
    return titled(fig, "effective rank of each layer's weights (conv: out × in·k·k)")


def per_class_accuracy_figure(y_true, y_pred, class_names: Sequence[str] | None = None) -> Figure:
    """Bars with each class's accuracy over the whole given set; dashed line at the overall accuracy."""
    use_style()
    table = class_accuracies(y_true, y_pred, class_names)
    overall = table["correct"].sum() / table["n"].sum()
    fig, ax = plt.subplots(figsize=(max(4.5, 0.6 * len(table) + 2), 3.8), layout="constrained")
    x = np.arange(len(table))
    ax.bar(x, table["accuracy"].fillna(0), color=sns.color_palette("colorblind")[0])
    for xi, value in zip(x, table["accuracy"]):
        if not np.isnan(value):
            ax.text(xi, value, f"{value:.2f}", ha="center", va="bottom", fontsize=8)
    ax.axhline(overall, color=BASELINE_COLOR, linestyle="--", linewidth=1, label=f"overall {overall:.3f}")
    ax.set_xticks(x)
    ax.set_xticklabels(table["name"], rotation=45 if len(table) > 6 else 0, ha="right" if len(table) > 6 else "center")
    ax.set_ylim(0, 1.08)
    ax.set_ylabel("accuracy")
    ax.legend(fontsize=8, loc="lower right")
    return titled(fig, f"per-class accuracy ({int(table['n'].sum())} images)")


def _as_images(images) -> np.ndarray:
    """[N, H, W] or [N, H, W, 1|3] float images in [0, 1] for imshow, each scaled by its own range."""
    if hasattr(images, "detach"):
        images = images.detach().cpu().float().numpy()
    array = np.asarray(images, dtype=float)
    if array.ndim == 4 and array.shape[1] in (1, 3) and array.shape[-1] not in (1, 3):
        array = array.transpose(0, 2, 3, 1)  # channels first → last
    if array.ndim == 4 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (3, 4) or (array.ndim == 4 and array.shape[-1] != 3):
        raise ValueError(f"images must be [N, H, W], [N, 1|3, H, W] or [N, H, W, 1|3], got shape {array.shape}")
    low = array.reshape(len(array), -1).min(axis=1).reshape((-1,) + (1,) * (array.ndim - 1))
    high = array.reshape(len(array), -1).max(axis=1).reshape((-1,) + (1,) * (array.ndim - 1))
    return (array - low) / np.where(high > low, high - low, 1.0)


def misclassified_grid(images, y_true, y_pred, class_names: Sequence[str] | None = None,
                       max_images: int = 25) -> Figure:
    """The first ``max_images`` misclassified images in a grid, each titled ``true→pred``."""
    use_style()
    if isinstance(max_images, bool) or not isinstance(max_images, (int, np.integer)) or max_images < 1:
        raise ValueError(f"max_images must be an integer ≥ 1, got {max_images!r}")
    truth, pred = labels_array(y_true), labels_array(y_pred)
    if not (len(images) == len(truth) == len(pred)):
        raise ValueError(f"images, y_true and y_pred differ in length: {len(images)}, {len(truth)}, {len(pred)}")
    wrong = np.flatnonzero(truth != pred)[:max_images]
    name = (lambda c: str(class_names[c])) if class_names is not None else str
    if not len(wrong):
        fig, ax = plt.subplots(figsize=(3, 2), layout="constrained")
        ax.axis("off")
        ax.text(0.5, 0.5, "no misclassified images", ha="center", va="center")
        return titled(fig, f"misclassified: 0 of {len(truth)}")
    array = images.detach().cpu().numpy() if hasattr(images, "detach") else np.asarray(images)
    pictures = _as_images(array[wrong])
    columns = math.ceil(math.sqrt(len(wrong)))
    n_rows = math.ceil(len(wrong) / columns)
    fig = plt.figure(figsize=(1.6 * columns, 1.75 * n_rows + 0.5), layout="constrained")
    for i, (index, picture) in enumerate(zip(wrong, pictures)):
        ax = fig.add_subplot(n_rows, columns, i + 1)
        ax.imshow(picture, cmap="gray" if picture.ndim == 2 else None, vmin=0, vmax=1)
        ax.set_title(f"{name(truth[index])}→{name(pred[index])}", fontsize=8)
        ax.axis("off")
    total_wrong = int((truth != pred).sum())
    return titled(fig, f"misclassified (true→pred): {len(wrong)} shown of {total_wrong} "
                        f"({total_wrong / len(truth):.1%} of {len(truth)} images)")


def learning_curves(histories: Mapping[str, Mapping[str, Sequence[float]]]) -> Figure:
    """Loss (train solid, validation dashed) and accuracy (validation solid, train dashed) per epoch."""
    use_style()
    if not isinstance(histories, Mapping) or not histories:
        raise ValueError("histories must be a non-empty dict: name → {train_loss, val_loss, val_acc[, train_acc]}")
    for name, history in histories.items():
        missing = [k for k in ("train_loss", "val_loss", "val_acc")
                   if not isinstance(history, Mapping) or k not in history]
        if missing:
            raise ValueError(f"histories[{name!r}] lacks {missing}; needs train_loss, val_loss, val_acc")
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
    palette = sns.color_palette("colorblind", len(histories))
    for color, (name, history) in zip(palette, histories.items()):
        epochs = np.arange(1, len(history["train_loss"]) + 1)
        loss_ax.plot(epochs, history["train_loss"], color=color, label=f"{name} train")
        loss_ax.plot(np.arange(1, len(history["val_loss"]) + 1), history["val_loss"], color=color,
                     linestyle="--", label=f"{name} val")
        acc_ax.plot(np.arange(1, len(history["val_acc"]) + 1), history["val_acc"], color=color,
                    label=f"{name} val")
        if history.get("train_acc") is not None:
            acc_ax.plot(np.arange(1, len(history["train_acc"]) + 1), history["train_acc"], color=color,
                        linestyle="--", label=f"{name} train")
    for ax, label in ((loss_ax, "loss"), (acc_ax, "accuracy")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.set_title(label)
        ax.legend(fontsize=7)
    return titled(fig, "learning curves: " + ", ".join(map(str, histories)))


def pretrained_overview(info_path: str | Path, data_root: str | None = None) -> list[Figure]:
    """Every figure of one pretrained network the engine saved (``<name>.json`` info beside ``<name>.pth``):
    the effective rank of each layer's weights, its pretraining learning curves and — when the pretraining
    classes' data can be read under ``data_root`` (None: ``$TL_STUDY_DATA``, else ``./data``) — its
    per-class test accuracy and the test images it gets wrong. Without the data those two are left out with
    a printed note: the others need only the saved files."""
    import torch

    info_path = Path(info_path)
    info = json.loads(info_path.read_text())
    cfg = StudyConfig.from_dict(info["config"]).replace(data_root=data_root)
    model = new_model(cfg, len(cfg.pre_train_classes))
    load_state(model, torch.load(info_path.with_suffix(".pth"), map_location="cpu", weights_only=True))
    model.eval()
    figures = [effective_rank(model)]
    if info.get("history"):
        figures.append(learning_curves({"pretraining": info["history"]}))
    try:
        check_available(cfg.source_dataset, cfg.resolved_data_root(), cfg.download)
    except ConfigError as err:
        print(f"per-class accuracy and mistakes left out: {err}")
        return figures
    source, _ = load_splits(cfg)
    pred = predict(model, source.x_test)
    figures.append(per_class_accuracy_figure(source.y_test, pred, source.class_names))
    figures.append(misclassified_grid(source.x_test, source.y_test, pred, source.class_names))
    return figures
