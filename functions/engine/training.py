"""Train and evaluate on in-memory tensors: Adam, early stopping on validation accuracy, best-state restore.

Two budgets: :func:`fit` counts epochs (the original study's protocol: patience in epochs), and
:func:`fit_steps` counts optimizer steps (at least ``min_steps``, validation every ``eval_every`` steps,
patience in evaluations), so a 25-image subset trains as many steps as a 2,500-image one. Only the
validation split is evaluated during training; the test split once, on the restored best state, and
training accuracy once at the end. Test-time augmentation (:func:`tta_probabilities`) averages softmax
scores over flipped or shifted copies of each input when evaluating; :func:`class_accuracies` breaks
predictions down by class.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .networks import trainable_parameters

TTA_MODES = ("flip", "fivecrop")


@dataclass
class Tensors:
    """Inputs and labels of train / validation / test (inputs may be cached prefix activations)."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor

    @classmethod
    def of_split(cls, split, device: str, train_idx: torch.Tensor | None = None,
                 val_idx: torch.Tensor | None = None) -> "Tensors":
        """The tensors of a :class:`~functions.engine.data.Split` on ``device``: its training rows
        ``train_idx`` (all when None), and ``val_idx`` (training-split rows) instead of its validation split."""
        x_train = split.x_train if train_idx is None else split.x_train[train_idx]
        y_train = split.y_train if train_idx is None else split.y_train[train_idx]
        x_val, y_val = ((split.x_val, split.y_val) if val_idx is None
                        else (split.x_train[val_idx], split.y_train[val_idx]))
        return cls(x_train.to(device), y_train.to(device), x_val.to(device), y_val.to(device),
                   split.x_test.to(device), split.y_test.to(device))


@dataclass
class FitResult:
    """Accuracies of the kept state, budget used (epochs and optimizer steps), wall seconds, history.

    ``val_acc`` is NaN when a run had no validation split (fixed budget, last state kept).
    """

    train_acc: float
    val_acc: float
    test_acc: float
    epochs: int
    best_epoch: int
    seconds: float
    history: dict[str, list[float]] = field(default_factory=dict)
    steps: int = 0
    best_step: int = 0
    val_loss: float = float("nan")  # of the kept state; breaks ties in val_acc when choosing a learning rate


def _as_float(x: torch.Tensor) -> torch.Tensor:
    """A batch ready for the net: fp32 (cached activations may be stored in bf16) and, for images,
    channels-last memory layout, which oneDNN's CPU convolutions run 1.4–1.9× faster (measured in
    benchmarks/grid_speed.py's profile)."""
    x = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
    return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x


def channels_last(net: nn.Module) -> nn.Module:
    """Convert conv weights to channels-last (in place; no effect on linear layers or results).

    Done outside inference mode even when called from :func:`evaluate`: weights converted there would
    become inference tensors, and training the network afterwards would fail.
    """
    with torch.inference_mode(False):
        return net.to(memory_format=torch.channels_last)


@torch.inference_mode()
def evaluate(net: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 2048,
             with_loss: bool = False, tta: str | None = None):
    """Accuracy (and mean cross-entropy with ``with_loss``) of ``net`` on tensors, in large batches.

    ``tta``: None, ``"flip"`` (average softmax over the image and its horizontal mirror) or
    ``"fivecrop"`` (centre + four corner crops, zero-padded back to the input size).
    """
    was_training = net.training
    net.eval()
    channels_last(net)
    correct, loss_sum = 0, 0.0
    device = next(net.parameters()).device
    for start in range(0, len(y), batch_size):
        xb = _as_float(x[start:start + batch_size].to(device, non_blocking=True))
        yb = y[start:start + batch_size].to(device, non_blocking=True)
        if tta is None:
            logits = net(xb)
            if with_loss:
                loss_sum += F.cross_entropy(logits, yb, reduction="sum").item()
            correct += (logits.argmax(1) == yb).sum().item()
        else:
            probs = tta_probabilities(net, xb, tta)
            if with_loss:
                loss_sum += F.nll_loss(probs.clamp_min(1e-12).log(), yb, reduction="sum").item()
            correct += (probs.argmax(1) == yb).sum().item()
    net.train(was_training)
    if len(y) == 0:  # an accuracy of zero images is not 0.0: refuse to make one up
        raise ValueError("cannot evaluate on zero images (empty split): raise train_limit/test_limit")
    n = len(y)
    return (correct / n, loss_sum / n) if with_loss else correct / n


# ----------------------------------------------------------------------------- test-time augmentation
def five_crops(x: torch.Tensor, pad: int) -> list[torch.Tensor]:
    """Centre + four corner crops of the zero-padded batch, each the size of the input."""
    h, w = x.shape[-2:]
    padded = F.pad(x, (pad, pad, pad, pad))
    corners = [(pad, pad), (0, 0), (0, 2 * pad), (2 * pad, 0), (2 * pad, 2 * pad)]
    return [padded[..., i:i + h, j:j + w] for i, j in corners]


def tta_probabilities(net: nn.Module, x: torch.Tensor, mode: str, pad: int | None = None) -> torch.Tensor:
    """Mean softmax over the views of ``x``: ``flip`` (image + mirror) or ``fivecrop``."""
    if mode == "flip":
        views = [x, x.flip(-1)]
    elif mode == "fivecrop":
        views = five_crops(x, pad if pad is not None else max(1, x.shape[-1] // 8))
    else:
        raise ValueError(f"tta {mode!r} is unknown; allowed: {list(TTA_MODES)} or None")
    return torch.stack([F.softmax(net(v), dim=1) for v in views]).mean(0)


@torch.inference_mode()
def predict(net: nn.Module, x: torch.Tensor, batch_size: int = 2048) -> torch.Tensor:
    """Predicted class of every row of ``x``."""
    was_training = net.training
    net.eval()
    channels_last(net)
    device = next(net.parameters()).device
    preds = [net(_as_float(x[s:s + batch_size].to(device))).argmax(1).cpu()
             for s in range(0, len(x), batch_size)]
    net.train(was_training)
    return torch.cat(preds) if preds else torch.empty(0, dtype=torch.long)


def labels_array(y) -> np.ndarray:
    """Labels (tensor, list or array) as a 1-D int numpy array."""
    if hasattr(y, "detach"):
        y = y.detach().cpu().numpy()
    array = np.asarray(y)
    if array.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {array.shape}")
    return array.astype(int)


def class_accuracies(y_true, y_pred, class_names=None) -> "pandas.DataFrame":  # noqa: F821
    """Accuracy of each class over the whole given set: columns class, name, n, correct, accuracy."""
    import pandas as pd

    truth, pred = labels_array(y_true), labels_array(y_pred)
    if truth.shape != pred.shape:
        raise ValueError(f"y_true and y_pred differ in length: {len(truth)} vs {len(pred)}")
    if not len(truth):
        raise ValueError("y_true is empty")
    classes = list(range(len(class_names))) if class_names is not None else sorted(np.unique(truth).tolist())
    if class_names is not None and truth.max() >= len(class_names):
        raise ValueError(f"class_names has {len(class_names)} names but y_true holds label {truth.max()}")
    records = []
    for c in classes:
        mine = truth == c
        n = int(mine.sum())
        correct = int((pred[mine] == c).sum())
        records.append({"class": c, "name": str(class_names[c]) if class_names is not None else str(c),
                        "n": n, "correct": correct, "accuracy": correct / n if n else np.nan})
    return pd.DataFrame(records)


def _snapshot(net: nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of the state (parameters and buffers) for best-state restore."""
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def final_scores(net: nn.Module, data: Tensors, eval_batch_size: int = 2048) -> tuple[float, float]:
    """(train accuracy, test accuracy) of the state a run keeps."""
    return evaluate(net, data.x_train, data.y_train, eval_batch_size), evaluate(net, data.x_test, data.y_test,
                                                                                eval_batch_size)


def fit(net: nn.Module, data: Tensors, lr: float, max_epochs: int, patience: int, batch_size: int,
        seed: int, eval_batch_size: int = 2048, record_history: bool = False,
        optimizer: str = "adam", scores: bool = True) -> FitResult:
    """Train ``net`` with Adam on the trainable parameters; early stopping on validation accuracy.

    Training stops after ``patience`` epochs without a new best validation accuracy (as the original
    study did) or after ``max_epochs``; the best state is restored in both cases. ``scores=False`` skips
    the final train and test accuracies (NaN) for a caller that scores only the run it keeps.
    """
    start_time = time.perf_counter()
    opt, device = _optimizer(net, lr, optimizer)
    gen = torch.Generator().manual_seed(seed)
    x_train, y_train = data.x_train, data.y_train
    best_acc, best_loss, best_state, best_epoch, stale = -1.0, float("nan"), _snapshot(net), 0, 0
    history: dict[str, list[float]] = {"train_loss": [], "val_loss": [], "val_acc": []}
    epoch, steps, best_step = 0, 0, 0
    for epoch in range(1, max_epochs + 1):
        net.train()
        order = torch.randperm(len(y_train), generator=gen)
        loss_sum = 0.0
        for s in range(0, len(order), batch_size):
            idx = order[s:s + batch_size]
            xb = _as_float(x_train[idx].to(device, non_blocking=True))
            yb = y_train[idx].to(device, non_blocking=True)
            loss = F.cross_entropy(net(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            steps += 1
            if record_history:
                loss_sum += loss.item() * len(idx)
        val_acc, val_loss = evaluate(net, data.x_val, data.y_val, eval_batch_size, with_loss=True)
        if record_history:
            history["train_loss"].append(loss_sum / len(y_train))
            history["val_loss"].append(val_loss)
            history["val_acc"].append(val_acc)
        if val_acc > best_acc:
            best_acc, best_loss, best_state, best_epoch, best_step = val_acc, val_loss, _snapshot(net), epoch, steps
            stale = 0
        else:
            stale += 1
            if stale >= patience:
                break
    net.load_state_dict(best_state)
    train_acc, test_acc = final_scores(net, data, eval_batch_size) if scores else (float("nan"), float("nan"))
    return FitResult(train_acc, best_acc, test_acc, epoch, best_epoch, time.perf_counter() - start_time,
                     history if record_history else {}, steps, best_step, best_loss)


def step_budget(n_train: int, batch_size: int, max_steps: int, eval_every: int, max_epochs: int | None = None,
                evals_per_epoch: int | None = None) -> tuple[int, int]:
    """(largest number of steps, steps between validations) for ``n_train`` training images.

    The budget scales with the subset so that it suits every fraction: at most ``max(max_steps,
    max_epochs passes)`` steps, validation every ``max(eval_every, a pass / evals_per_epoch)`` steps. Small
    subsets (a pass shorter than ``max_steps / max_epochs`` steps) get exactly ``max_steps`` and ``eval_every``.
    """
    per_pass = -(-n_train // batch_size)
    budget = max(max_steps, max_epochs * per_pass) if max_epochs else max_steps
    interval = max(eval_every, -(-per_pass // evals_per_epoch)) if evals_per_epoch else eval_every
    return budget, interval


def fit_steps(net: nn.Module, data: Tensors, lr: float, min_steps: int, max_steps: int, eval_every: int,
              patience: int, batch_size: int, seed: int, eval_batch_size: int = 2048,
              record_history: bool = False, optimizer: str = "adam", max_epochs: int | None = None,
              evals_per_epoch: int | None = None, scores: bool = True) -> FitResult:
    """Train for a budget of optimizer steps; early stopping counted in evaluations, never before ``min_steps``.

    Small training sets are cycled, reshuffled on every pass, so every run gets at least ``min_steps``
    steps however few images it has. Validation runs every ``eval_every`` steps (and at the last step);
    training stops once ``min_steps`` are done and ``patience`` evaluations in a row brought no new best,
    or at ``max_steps``; the best state is restored. ``max_epochs`` / ``evals_per_epoch`` scale both with
    a large training set (:func:`step_budget`). With an empty validation split there is no early
    stopping: exactly ``min_steps`` steps, and the last state is kept (``val_acc`` is NaN). ``scores=False``
    skips the final train and test accuracies (NaN), as in :func:`fit`.
    """
    start_time = time.perf_counter()
    opt, device = _optimizer(net, lr, optimizer)
    has_val = len(data.y_val) > 0
    max_steps, eval_every = step_budget(len(data.y_train), batch_size, max_steps, eval_every, max_epochs,
                                        evals_per_epoch)
    budget = max_steps if has_val else min_steps
    batches = _cycled_batches(len(data.y_train), batch_size, seed)
    best_acc, best_loss, best_state, best_step, stale = float("nan"), float("nan"), None, 0, 0
    history: dict[str, list[float]] = {"train_loss": [], "val_loss": [], "val_acc": []}
    loss_sum, seen, step = 0.0, 0, 0
    net.train()
    for step in range(1, budget + 1):
        idx = next(batches)
        xb = _as_float(data.x_train[idx].to(device, non_blocking=True))
        yb = data.y_train[idx].to(device, non_blocking=True)
        loss = F.cross_entropy(net(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if record_history:
            loss_sum, seen = loss_sum + loss.item() * len(idx), seen + len(idx)
        if not has_val or (step % eval_every and step != budget):
            continue
        val_acc, val_loss = evaluate(net, data.x_val, data.y_val, eval_batch_size, with_loss=True)
        if record_history:
            history["train_loss"].append(loss_sum / max(1, seen))
            history["val_loss"].append(val_loss)
            history["val_acc"].append(val_acc)
            loss_sum, seen = 0.0, 0
        if best_state is None or val_acc > best_acc:
            best_acc, best_loss, best_state, best_step, stale = val_acc, val_loss, _snapshot(net), step, 0
        else:
            stale += 1
            if stale >= patience and step >= min_steps:
                break
    if best_state is not None:
        net.load_state_dict(best_state)
    else:
        best_step = step  # no validation: the last state is the one kept
    train_acc, test_acc = final_scores(net, data, eval_batch_size) if scores else (float("nan"), float("nan"))
    epochs = -(-step * batch_size // len(data.y_train))  # passes over the training set begun
    return FitResult(train_acc, best_acc, test_acc, epochs, -(-best_step * batch_size // len(data.y_train)),
                     time.perf_counter() - start_time, history if record_history else {}, step, best_step,
                     best_loss)


def _optimizer(net: nn.Module, lr: float, name: str):
    """Adam (or SGD with momentum) over the trainable parameters only; also returns their device."""
    if name not in ("adam", "sgd"):
        raise ValueError(f"optimizer {name!r} is unknown; allowed: 'adam', 'sgd'")
    channels_last(net)  # before the optimizer sees the parameters
    params = trainable_parameters(net)
    if not params:
        raise ValueError("net has no trainable parameters: nothing to fit")
    opt = torch.optim.Adam(params, lr=lr) if name == "adam" else torch.optim.SGD(params, lr=lr, momentum=0.9)
    return opt, params[0].device


def _cycled_batches(n: int, batch_size: int, seed: int):
    """Endless minibatch indices: a fresh permutation of ``range(n)`` per pass; batches never span passes
    (so a 25-image set gives one 25-image batch per step at batch size 64)."""
    gen = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(n, generator=gen)
        for s in range(0, n, batch_size):
            yield order[s:s + batch_size]
