"""The original study's results format, written by :meth:`functions.engine.study.Study.export_original`.

A JSON list whose first element is the params dict and whose other elements are ``{"lr",
"sampled_percentage", "sampled_cut_point", "repeat", "train_acc", "test_acc"}`` rows: ``baselines_<tag>.json``
holds the baseline (cut -1), ``cuts_<tag>.json`` the cuts of one transfer condition. Exports go to their
own folder, ``<results_dir>/original_format/``, beside (never inside) the stores, so a results folder is
never read twice. ``functions.analysis.results`` reads this format back.

An export describes the rows it holds: its header's ``percentages`` are the fractions of its rows (a run on
a sub-grid of a store still exports every row of the store, and says so), and a file whose text would not
change is not rewritten, so re-running a notebook never touches a shipped export that did not change.
"""
from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .conditions import condition_flags
from .fileio import atomic_write_text

EXPORT_DIR = "original_format"  # <results_dir>/original_format/: exports, never read back as runs


def _json_value(value: Any) -> Any:
    """Plain JSON value: numpy scalars → Python, NaN → null."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _json_default(value: Any) -> Any:
    """Params values json cannot write: numpy scalars/arrays as Python values, anything else as text."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def _export_params(df: pd.DataFrame, params: dict) -> dict:
    """The params dict to write first: JSON-able, with the condition flags of ``df``'s rows."""
    params = dict(params)
    if isinstance(params.get("activation_function"), type):
        cls = params["activation_function"]
        params["activation_function"] = f"<class '{cls.__module__}.{cls.__qualname__}'>"
    conditions = sorted(set(df.loc[df["cut"] != -1, "condition"].dropna())) if "condition" in df else []
    if len(conditions) > 1:
        raise ValueError(f"df holds several transfer conditions {conditions}; export one at a time")
    if conditions:
        cond = conditions[0]
        switches = condition_flags(cond) if cond != "baseline" else None
        if switches is None:
            raise ValueError(f"df: condition {cond!r} has no original-format equivalent; allowed: F, FR, FT, U, UR, UT")
        flags = dict(zip(("freeze", "reinit", "truncate"), switches))
        for name, value in flags.items():
            if name == "reinit" and flags["truncate"]:
                continue  # with truncation the original's reinit flag has no effect
            if params.get(name) is not None and bool(params[name]) != value:
                raise ValueError(f"params[{name!r}]={params[name]!r} contradicts the rows' condition {cond!r}")
            params.setdefault(name, value)
            if params[name] is None:
                params[name] = value
    for column in ("study", "source_dataset", "target_dataset"):
        values = df[column].dropna().unique() if column in df else []
        if column == "study" and len(values) > 1:
            raise ValueError(f"df holds several studies {list(values)}; export one at a time")
        if len(values) == 1:
            params.setdefault(column, _json_value(values[0]))
    return params


def _header_of_rows(header: dict, rows: pd.DataFrame) -> dict:
    """``header`` with ``percentages`` set to the fractions ``rows`` hold (ascending); unchanged without rows."""
    if rows.empty:
        return header
    return {**header, "percentages": sorted(float(f) for f in rows["fraction"].dropna().unique())}


def export_original(df: pd.DataFrame, out_dir: str | os.PathLike, params: dict, tag: str) -> tuple[Path, Path]:
    """Write ``baselines_{tag}.json`` (cut -1 rows) and ``cuts_{tag}.json`` in the original study's format.

    Each file is a JSON list: ``params`` first (plus ``study``/``source_dataset``/``target_dataset`` from
    the rows when ``params`` lacks them, so the names survive a round trip; ``percentages`` the fractions
    of the file's own rows, whatever grid ``params`` was run with), then one
    ``{"lr", "sampled_percentage", "sampled_cut_point", "repeat", "train_acc", "test_acc"}`` per row.
    """
    if not isinstance(params, dict):
        raise ValueError(f"params must be a dict (the original's params dict), got {type(params).__name__}")
    if not tag or not re.fullmatch(r"[\w.\-]+", tag):
        raise ValueError(f"tag {tag!r} must be a non-empty file-name fragment (letters, digits, _ . -)")
    missing = [c for c in ("fraction", "cut", "repeat", "test_acc") if c not in df.columns]
    if missing:
        raise ValueError(f"df: missing columns {missing}")
    header = _export_params(df, params)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ordered = df.sort_values(["cut", "fraction", "repeat"], kind="stable")
    paths = []
    for name, part in (("baselines", ordered[ordered["cut"] == -1]), ("cuts", ordered[ordered["cut"] != -1])):
        items = [_header_of_rows(header, part)]
        for row in part.to_dict("records"):
            lr = row.get("lr")
            items.append({
                "lr": _json_value(lr if lr is not None and not pd.isna(lr) else header.get("lr_fine_tune")),
                "sampled_percentage": _json_value(float(row["fraction"])),
                "sampled_cut_point": int(row["cut"]),
                "repeat": int(row["repeat"]),
                "train_acc": _json_value(row.get("train_acc")),
                "test_acc": _json_value(row["test_acc"]),
            })
        path = out_dir / f"{name}_{tag}.json"
        text = json.dumps(items, default=_json_default)
        if not path.exists() or path.read_text(encoding="utf-8") != text:  # an unchanged export is not rewritten
            atomic_write_text(path, text)  # never a half-written export
        paths.append(path)
    return paths[0], paths[1]
