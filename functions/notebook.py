"""Helpers for the notebooks' papermill ``parameters`` cells: checked overrides → a StudyConfig.

Papermill injects overrides as a cell after the ``parameters`` cell; a misspelt name there would
silently define a new variable. The parameters cell therefore ends with ``_declared = set(globals())``
and the next cell calls :func:`check_parameters`, which raises on any name the notebook did not declare.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .engine.config import ConfigError, StudyConfig
from .engine.datasets import class_split as named_split

_IPYTHON_NAMES = {"In", "Out", "exit", "quit", "get_ipython", "open"}


def check_parameters(namespace: dict[str, Any], declared: set[str]) -> None:
    """Raise when the injected parameters define a name the parameters cell did not declare."""
    unknown = sorted(n for n in set(namespace) - set(declared)
                     if not n.startswith("_") and n not in _IPYTHON_NAMES)
    if unknown:
        allowed = sorted(n for n in declared if not n.startswith("_") and n not in _IPYTHON_NAMES
                         and not callable(namespace.get(n)) and not isinstance(namespace.get(n), type(os)))
        raise ConfigError(f"unknown notebook parameter(s) {unknown}; allowed: {allowed}")


def default_results_dir(profile: str, name: str = "results") -> str:
    """Results of smoke runs go to a scratch folder so they never overwrite shipped results."""
    return str(Path(name) / "smoke") if profile == "smoke" else name


def make_config(profile: str, overrides: dict[str, Any] | None = None, **fields: Any) -> StudyConfig:
    """A profile's config with the notebook's parameters applied (None means "profile default")."""
    settings = {k: v for k, v in fields.items() if v is not None}
    settings.update(overrides or {})
    if "results_dir" not in settings:
        settings["results_dir"] = default_results_dir(profile)
    if "pretrained_dir" not in settings and profile == "smoke":
        settings["pretrained_dir"] = str(Path(settings["results_dir"]) / "pretrained_models")
    return StudyConfig.from_profile(profile, **settings)


def study_config(profile: str, overrides: dict[str, Any] | None = None, class_split: str | None = None,
                 **fields: Any) -> StudyConfig:
    """Like :func:`make_config`, with classes taken from a named split when not given explicitly.

    ``class_split="all"`` (cross-domain) uses all ten classes on both sides.
    """
    if class_split is not None:
        dataset = "cross" if class_split == "all" else fields.get("source_dataset") or "MNIST"
        pre, fine = named_split(dataset, class_split)
        if fields.get("pre_train_classes") is None:
            fields["pre_train_classes"] = pre
        if fields.get("fine_tune_classes") is None:
            fields["fine_tune_classes"] = fine
    return make_config(profile, overrides, **fields)


def executor_for(scheduler_address: str):
    """None (run in this process) for an empty address; else an executor over a Dask client (``"local"``:
    a LocalCluster)."""
    if not scheduler_address:
        return None
    from .engine.distributed import make_executor

    return make_executor(scheduler_address)
