"""Helpers for the notebooks' papermill ``parameters`` cells: checked parameters → a StudyConfig.

The parameters cell declares every parameter with its type (``freeze: bool = True``); papermill injects the
values of ``-p``/``-y`` as a cell after it (``# Parameters`` and one assignment per value), where a misspelt
name would silently define a new variable and ``-p freeze false`` arrives as the string ``"false"``. The
next cell therefore calls ``params = check_parameters(globals())``, which raises on any injected name the
parameters cell did not declare and converts each parameter to its declared type (``"false"`` → ``False``,
``"[0.01, 0.1]"`` → ``[0.01, 0.1]``; a value that does not fit is an error naming the parameter and what it
takes); ``cfg = study_config(params)`` then builds the study's config from them, so a new parameter is
one line in the parameters cell. A bad parameter stops the notebook with its one-line message, not a
traceback (:class:`ParameterError`).

:func:`check_parameters` also gives a long grid run by papermill in a terminal a sign of life
(:func:`log_to_terminal`): one line per finished run on the terminal, none in the notebook.
"""
from __future__ import annotations

import ast
import difflib
import json
import logging
import math
import os
import sys
import typing
from collections.abc import Iterable, Mapping
from dataclasses import fields as dataclass_fields
from pathlib import Path
from typing import Any

from .engine.coerce import CoercionError, coerce_value
from .engine.config import ConfigError, StudyConfig
from .engine.datasets import class_split as named_split

ENGINE_LOGGER = "functions.engine"
INJECTED_MARKER = "# Parameters"  # the first line of the cell papermill injects (its translator's comment)
CONFIG_FIELDS = frozenset(f.name for f in dataclass_fields(StudyConfig)) - {"profile"}
# What a parameter takes, added to the message when a value does not fit its type.
PARAMETER_HINTS = {
    "percentages": "fractions of the fine-tuning data in (0, 1], e.g. -y 'percentages: [0.001, 0.01]'",
    "repeats": "one int for every fraction (-p repeats 8) or one int per fraction (-y 'repeats: [16, 16, 8]')",
    "cuts": "cuts 0..number of blocks, e.g. -y 'cuts: [0, 2, 4]'",
    "lr_grid": "learning rates each arm picks from, e.g. -y 'lr_grid: [0.0003, 0.001, 0.003]'; [] for one rate",
    "overrides": "StudyConfig fields, e.g. -y 'overrides: {\"lr_fine_tune\": 0.0003}'",
}


class ParameterError(ConfigError):
    """A bad notebook parameter. Inside a kernel IPython shows only its message (:meth:`_render_traceback_`),
    so papermill's error and the failed cell read as one line instead of a traceback through this module;
    the message also goes to the terminal that runs papermill as soon as it is raised, above papermill's own
    traceback (:meth:`tell_terminal`)."""

    def _render_traceback_(self) -> list[str]:
        return [f"{type(self).__name__}: {self}"]

    def tell_terminal(self) -> "ParameterError":
        """Write the message to the terminal (inside a kernel only); returns the error, to be raised."""
        if "ipykernel" in sys.modules:
            stream = terminal_stream()
            if stream is not None:
                print(f"\nnotebook parameters: {self}\n", file=stream, flush=True)
        return self


def check_parameters(namespace: dict[str, Any], injected: Iterable[str] | None = None) -> dict[str, Any]:
    """The notebook's parameters, checked and converted: ``{name: value}`` in the parameters cell's order.

    Parameters are the names the parameters cell annotates (``namespace["__annotations__"]``). ``injected``
    are the names papermill injected (default: read from the kernel's input history, :func:`injected_names`);
    one that is not a parameter raises :class:`ParameterError` listing the parameters. Each parameter's value
    is converted to its annotation, in ``namespace`` too. Inside a kernel, also send the engine's
    one-line-per-run log to the terminal (:func:`log_to_terminal`).
    """
    annotations = dict(namespace.get("__annotations__", {}))
    declared = [name for name in annotations if name in namespace and not name.startswith("_")]
    injected = set(injected_names(namespace) if injected is None else injected)
    unknown = sorted(n for n in injected - set(declared) if not n.startswith("PAPERMILL_"))
    if unknown:
        close = [m for name in unknown for m in difflib.get_close_matches(name, declared, n=1)]
        guess = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
        raise ParameterError(f"unknown notebook parameter(s) {unknown}{guess}; allowed: {sorted(declared)}"
                             ).tell_terminal()
    for name in declared:
        namespace[name] = coerce_parameter(name, namespace[name], annotations[name])
    if "ipykernel" in sys.modules:
        log_to_terminal()
    return {name: namespace[name] for name in declared}


def injected_names(namespace: Mapping[str, Any]) -> set[str]:
    """Names assigned by the cells papermill injected into this kernel (IPython's input history ``_ih``:
    cells whose first line is ``# Parameters``); empty outside IPython."""
    names = set()
    for source in namespace.get("_ih", []) or []:
        if not isinstance(source, str) or not source.lstrip().startswith(INJECTED_MARKER):
            continue
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        for node in tree.body:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target] \
                if isinstance(node, (ast.AnnAssign, ast.AugAssign)) else []
            names.update(t.id for t in targets if isinstance(t, ast.Name))
    return names


def check_choices(name: str, values: Any, allowed: Iterable[str]) -> Any:
    """``values`` (one name or a list) when each is one of ``allowed``; else :class:`ParameterError` naming the
    parameter, the unknown values and the allowed ones."""
    allowed = list(allowed)
    unknown = [v for v in ([values] if isinstance(values, str) else list(values)) if v not in allowed]
    if unknown:
        raise ParameterError(f"notebook parameter {name}: {unknown} unknown; allowed: {allowed}").tell_terminal()
    return values


def coerce_parameter(name: str, value: Any, annotation: Any) -> Any:
    """``value`` as its declared type: bool/int/float/str, lists and Optional/Union of them as in
    StudyConfig (``functions.engine.coerce``), and ``dict`` from JSON or Python-literal text."""
    if annotation is dict or typing.get_origin(annotation) is dict:
        return _to_dict(name, value)
    try:
        return coerce_value(name, value, annotation)
    except CoercionError as err:
        hint = PARAMETER_HINTS.get(name)
        raise ParameterError(f"notebook parameter {err}" + (f" ({hint})" if hint else "")).tell_terminal() from None


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
    hint = PARAMETER_HINTS.get(name, "JSON or a Python literal")
    raise ParameterError(f"notebook parameter {name}: expected a dict ({hint}), got {value!r}").tell_terminal()


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


def profile_repeats(profile: str, percentages: list[float]) -> int | list[int]:
    """The profile's repeats for any fractions: its int, or per fraction the count of the profile's nearest
    fraction on a log scale (cpu: 16 at 0.1 % and 1 %, 8 at 10 %; so 0.5 % gets 16 and 50 % gets 8)."""
    base = StudyConfig.from_profile(profile)
    if isinstance(base.repeats, int):
        return base.repeats
    return [base.repeats_for(min(base.percentages, key=lambda p: abs(math.log(p) - math.log(f))))
            for f in percentages]


def _with_repeats(profile: str, settings: dict[str, Any]) -> dict[str, Any]:
    """``settings`` with repeats that fit its fractions: the profile's rule when fractions are given without
    repeats; an error that says what to pass when a list of repeats does not match them."""
    percentages, repeats = settings.get("percentages"), settings.get("repeats")
    if isinstance(percentages, list) and all(isinstance(p, (int, float)) and 0 < p <= 1 for p in percentages):
        if repeats is None:
            settings["repeats"] = profile_repeats(profile, percentages)
        elif isinstance(repeats, list) and len(repeats) != len(percentages):
            raise ParameterError(
                f"repeats has {len(repeats)} values but percentages has {len(percentages)}: pass one int for "
                f"every fraction (-p repeats 8), one per fraction (-y 'repeats: [...]' with {len(percentages)} "
                "values), or no repeats for the profile's rule").tell_terminal()
    return settings


def make_config(profile: str, overrides: dict[str, Any] | None = None, **fields: Any) -> StudyConfig:
    """A profile's config with the notebook's parameters applied (None means "profile default"; an empty
    ``lr_grid`` means one learning rate, no tuning), checked before anything runs."""
    settings = {k: v for k, v in fields.items() if v is not None}
    settings.update(overrides or {})
    if settings.get("lr_grid") == []:
        settings["lr_grid"] = None
    if "results_dir" not in settings:
        settings["results_dir"] = default_results_dir(profile)
    if "pretrained_dir" not in settings and profile == "smoke":
        settings["pretrained_dir"] = str(Path(settings["results_dir"]) / "pretrained_models")
    try:
        return StudyConfig.from_profile(profile, **_with_repeats(profile, settings)).validate(check_data=False)
    except ParameterError:
        raise
    except ConfigError as err:  # a bad value of a parameter or of overrides: its message, not a traceback
        raise ParameterError(str(err)).tell_terminal() from None


def study_config(parameters: Mapping[str, Any] | str, **changes: Any) -> StudyConfig:
    """The study's config from the notebook's checked parameters (:func:`check_parameters`' dict).

    Every parameter named like a ``StudyConfig`` field sets that field (None: the profile's value), ``profile``
    picks the profile, ``overrides`` sets any other field, ``class_split`` names the classes when
    ``pre_train_classes``/``fine_tune_classes`` are None (``"all"``: all ten on both sides); other parameters
    (``scheduler_address``, ``variants`` …) are the notebook's own. ``changes`` win over ``parameters``.
    ``parameters`` may also be a profile name: ``study_config("cpu", source_dataset="MNIST", …)``.
    """
    values = {"profile": parameters} if isinstance(parameters, str) else dict(parameters)
    values.update(changes)
    profile = values.get("profile")
    if not isinstance(profile, str):
        raise ParameterError(f"study_config needs a profile name, got {profile!r}").tell_terminal()
    fields = {k: v for k, v in values.items() if k in CONFIG_FIELDS}
    class_split = values.get("class_split")
    if class_split is not None:
        dataset = "cross" if class_split == "all" else fields.get("source_dataset") or "MNIST"
        try:
            pre, fine = named_split(dataset, class_split)
        except ConfigError as err:  # names class_split and the allowed splits
            raise ParameterError(str(err)).tell_terminal() from None
        if fields.get("pre_train_classes") is None:
            fields["pre_train_classes"] = pre
        if fields.get("fine_tune_classes") is None:
            fields["fine_tune_classes"] = fine
    return make_config(profile, values.get("overrides"), **fields)


def executor_for(scheduler_address: str):
    """The executor of a notebook's ``scheduler_address``: None for ``""`` (``Study.run``'s default: a pool of
    single-threaded worker processes when it pays, else this process), ``"inprocess"`` always this process,
    else an executor over a Dask client (``"local"``: a LocalCluster; or a scheduler address or file)."""
    if not scheduler_address:
        return None
    from .engine.distributed import make_executor

    return make_executor(scheduler_address)
