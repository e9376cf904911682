"""Pretraining: the source network of a config, trained once and saved under a name that fingerprints it.

A pretrained model lives in ``pretrained_models/<source>_<classes>_d<depth>c<channels>_<hash>.pth`` with its
info (accuracies, epochs, history) beside it as ``.json``; the hash covers everything that determines the
weights, the source data's identity included, so a saved model is only ever loaded by a config that would
have trained the same one. :func:`fingerprint` and :func:`data_keys` are the hashing rules the results
store's name (``Study.results_fingerprint``) shares.
"""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import torch

from .config import StudyConfig
from .data import Split, dataset_identity, is_canonical, load_splits, stable_seed
from .fileio import atomic_torch_save, atomic_write_text
from .networks import BlockNet, load_state, new_model
from .store import check_writable
from .training import Tensors, fit

log = logging.getLogger(__name__)


def fingerprint(data: dict[str, Any]) -> str:
    """Ten hex digits of the SHA-1 of ``data`` as sorted JSON."""
    return hashlib.sha1(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:10]


def data_keys(cfg: StudyConfig, datasets: set[str]) -> dict[str, str]:
    """Identity of the data files a fingerprint depends on, for datasets that are not the canonical files.

    The canonical files (what torchvision downloads) add nothing, so fingerprints made before data
    identity was hashed stay valid; any other files under ``data_root`` give a different fingerprint,
    so their rows and pretrained models never mix with those of the real dataset.
    """
    root = cfg.resolved_data_root()
    return {f"data:{name}": dataset_identity(name, root) for name in sorted(datasets)
            if not is_canonical(name, root)}


def pretrain_fingerprint(cfg: StudyConfig) -> str:
    """Hash of everything that determines the pretrained weights (the source data's identity included)."""
    keys = dict(cfg.model_fields(), source=cfg.source_dataset, classes=cfg.pre_train_classes,
                lr=cfg.lr_pretrain, epochs=cfg.num_train, patience=cfg.early_stop_patience,
                batch=cfg.batch_size, val=cfg.val_split, data_seed=cfg.generate_dataset_seed, seed=cfg.seed,
                train_limit=cfg.train_limit, test_limit=cfg.test_limit)
    keys.update(data_keys(cfg, {cfg.source_dataset}))
    return fingerprint(keys)


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
    result = fit(model, Tensors.of_split(source, device), cfg.lr_pretrain, cfg.num_train,
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
