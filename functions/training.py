"""Train and evaluate on in-memory tensors: Adam, early stopping on validation accuracy, best-state restore.

Per epoch only the validation split is evaluated (early stopping needs nothing else); the test split is
evaluated once, on the restored best state, and training accuracy once at the end.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .models import trainable_parameters


@dataclass
class Tensors:
    """Inputs and labels of train / validation / test (inputs may be cached prefix activations)."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


@dataclass
class FitResult:
    """Accuracies of the restored best state, epochs run, wall seconds and the per-epoch history."""

    train_acc: float
    val_acc: float
    test_acc: float
    epochs: int
    best_epoch: int
    seconds: float
    history: dict[str, list[float]] = field(default_factory=dict)


def set_determinism(threads: int | None = None) -> None:
    """Deterministic kernels where PyTorch offers them (CPU results are then bit-identical run to run)."""
    torch.use_deterministic_algorithms(True, warn_only=True)
    if threads:
        torch.set_num_threads(threads)


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
            from .tta import tta_probabilities

            probs = tta_probabilities(net, xb, tta)
            if with_loss:
                loss_sum += F.nll_loss(probs.clamp_min(1e-12).log(), yb, reduction="sum").item()
            correct += (probs.argmax(1) == yb).sum().item()
    net.train(was_training)
    n = max(1, len(y))
    return (correct / n, loss_sum / n) if with_loss else correct / n


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


def _snapshot(net: nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of the state (parameters and buffers) for best-state restore."""
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def fit(net: nn.Module, data: Tensors, lr: float, max_epochs: int, patience: int, batch_size: int,
        seed: int, eval_batch_size: int = 2048, record_history: bool = False,
        optimizer: str = "adam") -> FitResult:
    """Train ``net`` with Adam on the trainable parameters; early stopping on validation accuracy.

    Training stops after ``patience`` epochs without a new best validation accuracy (as the original
    study did) or after ``max_epochs``; the best state is restored in both cases.
    """
    start_time = time.perf_counter()
    channels_last(net)  # before the optimizer sees the parameters
    params = trainable_parameters(net)
    if not params:
        raise ValueError("net has no trainable parameters: nothing to fit")
    opt = torch.optim.Adam(params, lr=lr) if optimizer == "adam" else torch.optim.SGD(params, lr=lr, momentum=0.9)
    device = params[0].device
    gen = torch.Generator().manual_seed(seed)
    x_train, y_train = data.x_train, data.y_train
    best_acc, best_state, best_epoch, stale = -1.0, _snapshot(net), 0, 0
    history: dict[str, list[float]] = {"train_loss": [], "val_loss": [], "val_acc": []}
    epoch = 0
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
            if record_history:
                loss_sum += loss.item() * len(idx)
        if record_history:
            val_acc, val_loss = evaluate(net, data.x_val, data.y_val, eval_batch_size, with_loss=True)
            history["train_loss"].append(loss_sum / len(y_train))
            history["val_loss"].append(val_loss)
            history["val_acc"].append(val_acc)
        else:
            val_acc = evaluate(net, data.x_val, data.y_val, eval_batch_size)
        if val_acc > best_acc:
            best_acc, best_state, best_epoch, stale = val_acc, _snapshot(net), epoch, 0
        else:
            stale += 1
            if stale >= patience:
                break
    net.load_state_dict(best_state)
    train_acc = evaluate(net, x_train, y_train, eval_batch_size)
    test_acc = evaluate(net, data.x_test, data.y_test, eval_batch_size)
    return FitResult(train_acc, best_acc, test_acc, epoch, best_epoch, time.perf_counter() - start_time,
                     history if record_history else {})
