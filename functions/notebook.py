"""Helpers for the notebooks' papermill ``parameters`` cells: checked overrides → a StudyConfig.

Papermill injects overrides as a cell after the ``parameters`` cell; a misspelt name there would
silently define a new variable, and ``-p freeze false`` arrives as the string ``"false"``. The parameters
cell therefore declares every parameter with its type (``freeze: bool = True``) and ends with
``_declared = set(globals())``; the next cell calls :func:`check_parameters`, which raises on any name the
notebook did not declare and converts each injected value to its declared type (``"false"`` → ``False``,
``"[0.01, 0.1]"`` → ``[0.01, 0.1]``; a value that does not fit is an error naming the parameter).

:func:`check_parameters` also gives a long grid run by papermill in a terminal a sign of life
(:func:`log_to_terminal`): one line per finished run on the terminal, none in the notebook.
"""
from __future__ import annotations

import ast
import json
import logging
import os
import sys
import typing
from pathlib import Path
from typing import Any

from .engine.coerce import CoercionError, coerce_value
from .engine.config import ConfigError, StudyConfig
from .engine.datasets import class_split as named_split

_IPYTHON_NAMES = {"In", "Out", "exit", "quit", "get_ipython", "open"}
ENGINE_LOGGER = "functions.engine"


def check_parameters(namespace: dict[str, Any], declared: set[str]) -> None:
    """Raise when the injected parameters define a name the parameters cell did not declare; convert the
    declared ones to the types they are annotated with (in ``namespace``). Inside a kernel, also send the
    engine's one-line-per-run log to the terminal (:func:`log_to_terminal`)."""
    unknown = sorted(n for n in set(namespace) - set(declared)
                     if not n.startswith("_") and n not in _IPYTHON_NAMES)
    if unknown:
        allowed = sorted(n for n in declared if not n.startswith("_") and n not in _IPYTHON_NAMES
                         and not callable(namespace.get(n)) and not isinstance(namespace.get(n), type(os)))
        raise ConfigError(f"unknown notebook parameter(s) {unknown}; allowed: {allowed}")
    for name, annotation in dict(namespace.get("__annotations__", {})).items():
        if name in declared and name in namespace:
            namespace[name] = coerce_parameter(name, namespace[name], annotation)
    if "ipykernel" in sys.modules:
        log_to_terminal()


def coerce_parameter(name: str, value: Any, annotation: Any) -> Any:
    """``value`` as its declared type: bool/int/float/str, lists and Optional/Union of them as in
    StudyConfig (``functions.engine.coerce``), and ``dict`` from JSON or Python-literal text."""
    if annotation is dict or typing.get_origin(annotation) is dict:
        return _to_dict(name, value)
    try:
        return coerce_value(name, value, annotation)
    except CoercionError as err:
        raise ConfigError(f"notebook parameter {err}") from None


def _to_dict(name: str, value: Any) -> Any:
    if not isinstance(value, str):
        return value
    for parse in (json.loads, ast.literal_eval):
        try:
            parsed = parse(value)
        except (ValueError, SyntaxError):
            continue
        if isinstance(parsed, dict):
            return parsed
    raise ConfigError(f"notebook parameter {name}: expected a dict (JSON or Python literal), got {value!r}")


class _TerminalHandler(logging.StreamHandler):
    """Marks the handler :func:`log_to_terminal` attached, so that it is attached once."""


def terminal_stream():
    """A stream that reaches the terminal that started the kernel without showing up in the notebook.

    ipykernel (``capture_fd_output``, on by default) points file descriptor 2 at a pipe whose contents
    it copies into the notebook *and* to the original stderr, so ``sys.__stderr__`` would print every line
    in the notebook too; the copy of the original descriptor it keeps (``_original_stdstream_copy``)
    reaches only the terminal (papermill's) or the Jupyter server's log. A kernel has no controlling
    terminal (``/dev/tty`` cannot be opened), so there is no other way to it. Without that capture
    (a plain Python process, a kernel started under pytest) ``sys.__stderr__`` is the terminal already.
    """
    fd = getattr(sys.stderr, "_original_stdstream_copy", None)
    if isinstance(fd, int):
        try:
            return os.fdopen(os.dup(fd), "w", buffering=1, encoding="utf-8", errors="replace")
        except OSError:
            pass
    return sys.__stderr__


def log_to_terminal(level: int = logging.INFO) -> logging.Handler | None:
    """Send the ``functions.engine`` log (one line per finished run, e.g. ``12/120 FR f=0.01 k=2 r=3
    test_acc=0.951 (3.2 s)``) to :func:`terminal_stream`; idempotent. ``TL_STUDY_LOG=0`` turns it off."""
    if os.environ.get("TL_STUDY_LOG", "1").strip().lower() in ("0", "false", "no", "off"):
        return None
    logger = logging.getLogger(ENGINE_LOGGER)
    for handler in logger.handlers:
        if isinstance(handler, _TerminalHandler):
            return handler
    stream = terminal_stream()
    if stream is None:
        return None
    handler = _TerminalHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    logger.addHandler(handler)
    if logger.level == logging.NOTSET or logger.level > level:
        logger.setLevel(level)
    logger.propagate = False  # a root handler in the kernel (basicConfig) would print into the notebook
    return handler


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
