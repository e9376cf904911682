"""Load results into one tidy DataFrame: our JSON-lines stores, JSON row lists and the original study's files.

Three sources are understood, in any mix:

* our JSON-lines store: one results row per line (:mod:`functions.engine.schema`, CONTRIBUTING.md);
* a JSON list of such rows;
* the original study's format (also what :func:`functions.engine.original_format.export_original`
  writes): a JSON list whose first element is the params dict and whose other elements are ``{"lr",
  "sampled_percentage", "sampled_cut_point", "repeat", "train_acc", "test_acc"}`` rows
  (``baselines_*.json`` with cut -1, ``cuts_*.json``).

Every row comes out with all columns of the results row (missing values filled from the params dict or
derived), plus ``source`` (the file it came from) and ``arm`` (``"baseline"`` or ``"cut k"``); a run read
twice (one store named twice, or a store and its export) comes out once. :func:`with_settings` then gives
every transfer condition its own copy of the baseline, which the figures and statistics group by.
"""
from __future__ import annotations

import json
import math
import os
import re
import warnings
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from functions.engine.conditions import (BASELINE_FLAGS, WHAT_TRANSFERS, arm_label, condition_flags,
                                        condition_name, equivalent_arms, ordered_conditions)
from functions.engine.datasets import path_names
from functions.engine.schema import ROW_COLUMNS

EXTRA_COLUMNS = ["arm", "source"]
CLUSTERING_COLUMNS = ["fraction", "repeat", "layer", "precision", "recall", "accuracy", "ari",
                      "dataset", "split"]
SUMMARY_STATS = ("median", "mean", "iqm", "std", "count")

_INT_COLUMNS = ("cut", "repeat")
_NULLABLE_INT_COLUMNS = ("seed", "depth", "num_channels", "kernel_size", "n_train", "epochs")
_FLOAT_COLUMNS = ("fraction", "lr", "train_acc", "val_acc", "test_acc", "seconds")
_BOOL_COLUMNS = ("freeze", "reinit", "truncate")
# A run and its results: two rows that agree on these (and on _RUN_IDENTITY) are one run read twice.
_RUN_KEY = ("study", "condition", "fraction", "cut", "repeat", "lr", "train_acc", "test_acc")
_RUN_IDENTITY = ("config_hash", "protocol_variant", "n_val")  # set by the engine: which store a row is from


# ----------------------------------------------------------------------------- reading files
def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Rows of a JSON-lines file; a corrupt *last* line (a write cut short) is skipped with a warning.

    A corrupt line anywhere else means the file is damaged, not merely interrupted: ValueError naming the
    file and the line number.
    """
    path = Path(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    numbered = [(number, line) for number, line in enumerate(lines, 1) if line.strip()]
    rows = []
    for position, (number, line) in enumerate(numbered):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            if position == len(numbered) - 1:
                warnings.warn(f"{path}: ignoring a truncated last line (line {number})", RuntimeWarning,
                              stacklevel=2)
                break
            raise ValueError(f"{path}: line {number} is not valid JSON ({err.msg})") from err
        if not isinstance(row, dict):
            raise ValueError(f"{path}: line {number} is not a JSON object")
        rows.append(row)
    return rows


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err.msg}, line {err.lineno})") from err


def _is_original_format(data: Any) -> bool:
    """A list whose first element is a params dict and whose rows carry ``sampled_cut_point``."""
    if not (isinstance(data, list) and data and isinstance(data[0], dict)):
        return False
    first_is_params = "test_acc" not in data[0] and "sampled_cut_point" not in data[0]
    return first_is_params and all(isinstance(r, dict) and "sampled_cut_point" in r for r in data[1:])


def _is_row_list(rows: Any) -> bool:
    """A non-empty list of our results rows."""
    return (isinstance(rows, list) and bool(rows)
            and all(isinstance(r, dict) and {"cut", "fraction", "test_acc"} <= r.keys() for r in rows))


# ----------------------------------------------------------------------------- small derivations
def activation_name(value: Any) -> str | None:
    """Short activation name from ``"ReLU"``, ``nn.ReLU`` or ``"<class 'torch.nn....ReLU'>"``."""
    if value is None:
        return None
    if isinstance(value, type):
        return value.__name__
    text = str(value).strip()
    text = re.sub(r"^<class\s+'|'>$", "", text)
    return text.rsplit(".", 1)[-1]


def pooling_name(use_pooling: Any, every_n_layers: Any = None, stride: Any = None) -> str:
    """``"none"`` or ``"avg{stride}/every{n}"`` (the original's defaults: every layer, stride 2)."""
    if not use_pooling:
        return "none"
    return f"avg{stride if stride is not None else 2}/every{every_n_layers if every_n_layers is not None else 1}"


def arm_name(cut: int) -> str:
    """``baseline`` for cut -1, else ``cut k``."""
    return arm_label(cut)


def arm_sort_key(arm: Any) -> tuple:
    """Order arms as baseline, cut 0, cut 1, …, cut 10 (numerically), then any other label."""
    text = str(arm)
    if text == "baseline":
        return (0, 0, "")
    match = re.fullmatch(r"cut (-?\d+)", text)
    if match:
        return (1, int(match.group(1)), "")
    return (2, 0, text)


def sort_arms(arms: Iterable[Any]) -> list:
    """Distinct arms in :func:`arm_sort_key` order."""
    return sorted(set(arms), key=arm_sort_key)


def classes_label(classes: Any) -> str:
    """``[0,1,2,3,4]`` → ``0-4``; a non-contiguous list is comma separated; unknown → ``?``."""
    if classes is None or (isinstance(classes, float) and math.isnan(classes)):
        return "?"
    cs = [int(c) for c in classes]
    if len(cs) > 2 and cs == list(range(cs[0], cs[0] + len(cs))):
        return f"{cs[0]}-{cs[-1]}"
    return ",".join(str(c) for c in cs)


def transfer_name(source_dataset: Any, pretrain_classes: Any, target_dataset: Any, finetune_classes: Any) -> str:
    """Dataset pair and class split, e.g. ``MNIST[0-4]->MNIST[5-9]``."""
    return (f"{source_dataset}[{classes_label(pretrain_classes)}]->"
            f"{target_dataset}[{classes_label(finetune_classes)}]")


def datasets_from_path(path: str | os.PathLike) -> tuple[str, str] | None:
    """(source, target) named by the path, innermost part first: ``A_to_B`` or a folder named after a dataset.

    The original study keeps its results under ``MNIST/``, ``FashionMNIST/``, ``CIFAR/`` and
    ``MNIST_to_FashionMNIST/``-style folders, so the path is the only place its files name their datasets.
    """
    path = Path(path)
    known = path_names()  # every registered dataset's name and aliases, lower case
    names = "|".join(sorted(map(re.escape, known), key=len, reverse=True))
    for depth, part in enumerate([path.stem, *reversed(path.parent.parts)]):
        pair = re.search(rf"(?i)(?:^|[^a-z])({names})_to_({names})(?:$|[^a-z0-9])", part)
        if pair:
            return known[pair.group(1).lower()], known[pair.group(2).lower()]
        if depth > 0 and part.lower() in known:  # a folder, not the file, named after a dataset
            name = known[part.lower()]
            return name, name
    return None


# ----------------------------------------------------------------------------- one file → rows
def _rows_from_original(data: list, path: Path, study: str | None, source_dataset: str | None,
                        target_dataset: str | None) -> list[dict]:
    """Results rows from the original study's format, filled from its params dict."""
    params = data[0]
    from_path = datasets_from_path(path) or ("MNIST", "MNIST")
    source = source_dataset or params.get("source_dataset") or from_path[0]
    target = target_dataset or params.get("target_dataset") or from_path[1]
    freeze = bool(params.get("freeze", True))
    reinit = bool(params.get("reinit", True))
    truncate = bool(params.get("truncate") or False)  # the original wrote null or left it out
    file_condition = condition_name(freeze, reinit, truncate)
    pre, fine = params.get("pre_train_classes"), params.get("fine_tune_classes")
    study_name = study or params.get("study") or f"{transfer_name(source, pre, target, fine)} {file_condition}"
    shared = {
        "study": study_name, "source_dataset": source, "target_dataset": target,
        "pretrain_classes": pre, "finetune_classes": fine,
        "depth": params.get("depth"), "num_channels": params.get("num_channels"),
        "kernel_size": params.get("kernel_size"),
        "activation": activation_name(params.get("activation_function")),
        "pooling": pooling_name(params.get("use_pooling"), params.get("pooling_every_n_layers"),
                                params.get("pooling_stride")),
    }
    rows = []
    for index, item in enumerate(data[1:], 1):
        missing = [k for k in ("sampled_percentage", "sampled_cut_point", "repeat", "test_acc") if k not in item]
        if missing:
            raise ValueError(f"{path}: element {index} lacks {missing}")
        cut = int(item["sampled_cut_point"])
        baseline = cut == -1
        # a baseline is trained from scratch whatever the file's transfer condition says
        flags = BASELINE_FLAGS if baseline else (freeze, reinit, truncate)
        rows.append({
            **shared,
            "key": f"{path.stem}#{index}",
            "condition": condition_name(*flags, cut=cut),
            "freeze": flags[0], "reinit": flags[1], "truncate": flags[2],
            "fraction": item["sampled_percentage"], "cut": cut, "repeat": item["repeat"],
            "lr": item.get("lr", params.get("lr_fine_tune")),
            "train_acc": item.get("train_acc"), "test_acc": item["test_acc"],
        })
    return rows


def _fill_our_row(row: dict, path: Path, study: str | None) -> dict:
    """Derive the fields a row of ours may leave out: flags, condition, study, short activation name."""
    row = dict(row)
    cut = int(row["cut"])
    # flags default to what the condition names, else (no condition) to the original's defaults,
    # FR; a control ("AnB", "surgical" …) keeps whatever flags it wrote
    condition = "baseline" if cut == -1 else row.get("condition")
    flags = condition_flags(condition) if condition else condition_flags("FR")
    for name, value in zip(_BOOL_COLUMNS, flags or (None, None, None)):
        if row.get(name) is None:
            row[name] = value
    if not row.get("condition"):
        row["condition"] = condition_name(bool(row["freeze"]), bool(row["reinit"]), bool(row["truncate"]), cut=cut)
    if not row.get("study"):
        if study:
            row["study"] = study
        elif row.get("source_dataset") or row.get("target_dataset"):
            row["study"] = transfer_name(row.get("source_dataset"), row.get("pretrain_classes"),
                                         row.get("target_dataset"), row.get("finetune_classes"))
        else:  # nothing names the transfer: the file does
            row["study"] = path.stem
    if "activation" in row:
        row["activation"] = activation_name(row["activation"])
    return row


def _rows_from_file(path: Path, study: str | None, source_dataset: str | None, target_dataset: str | None,
                    strict: bool) -> list[dict] | None:
    """Rows of one file, or None when a scanned file is not a results file (``strict`` raises instead)."""
    if path.suffix == ".jsonl":
        data = read_jsonl(path)
        if not data:
            return []
    else:
        data = _read_json(path)
    if _is_original_format(data):
        rows = _rows_from_original(data, path, study, source_dataset, target_dataset)
    elif _is_row_list(data):
        rows = [_fill_our_row(r, path, study) for r in data]
    elif strict:
        raise ValueError(f"{path}: neither results rows (with cut, fraction, test_acc) nor the original "
                         "study's format (params dict, then rows with sampled_cut_point)")
    else:
        return None
    for row in rows:
        row["source"] = str(path)
    return rows


def _expand_paths(paths_or_dirs: Iterable[str | os.PathLike], patterns: tuple[str, ...]) -> list[tuple[Path, bool]]:
    """(file, named explicitly?) for every path; directories give their files matching ``patterns``."""
    files = []
    for item in paths_or_dirs:
        path = Path(item)
        if path.is_dir():
            found = sorted({p for pattern in patterns for p in path.glob(pattern) if p.is_file()})
            files.extend((p, False) for p in found)
        elif path.is_file():
            files.append((path, True))
        else:
            raise ValueError(f"paths_or_dirs: {str(path)!r} is neither a file nor a directory")
    return files


# ----------------------------------------------------------------------------- the tidy frame
def _tidy(rows: list[dict]) -> pd.DataFrame:
    """Rows → frame with every results column, in schema order, with stable dtypes."""
    df = pd.DataFrame(rows)
    for column in ROW_COLUMNS + EXTRA_COLUMNS:
        if column not in df.columns:
            df[column] = None
    if len(df):
        df["arm"] = [a if isinstance(a, str) and a else arm_name(c) for a, c in zip(df["arm"], df["cut"])]
    for column in _INT_COLUMNS:
        df[column] = pd.to_numeric(df[column]).astype("int64")
    for column in _NULLABLE_INT_COLUMNS:
        df[column] = pd.to_numeric(df[column]).astype("Int64")
    for column in _FLOAT_COLUMNS:
        df[column] = pd.to_numeric(df[column]).astype("float64")
    for column in _BOOL_COLUMNS:
        values = df[column]
        df[column] = values.astype(bool) if values.notna().all() else values.astype("boolean")
    extras = [c for c in df.columns if c not in ROW_COLUMNS + EXTRA_COLUMNS]
    return df[ROW_COLUMNS + EXTRA_COLUMNS + extras].reset_index(drop=True)


def load_results(*paths_or_dirs: str | os.PathLike, study: str | None = None,
                 source_dataset: str | None = None, target_dataset: str | None = None) -> pd.DataFrame:
    """One tidy frame from any mix of our JSON-lines stores, JSON exports and the original study's files.

    Directories are scanned (not recursively) for ``*.jsonl`` and ``*.json``; scanned files that hold no
    results (configs, clustering outputs) are skipped, a file named explicitly must hold results. So a
    results folder's exports (its ``original_format/`` subfolder) and its stores' ``.lock``/``.claims``
    sidecars are never read as runs; a run read twice comes out once (:func:`drop_repeated_runs`).

    ``study`` names rows whose source carries no study name; otherwise it is derived: for the original's
    files ``"MNIST[0-4]->MNIST[5-9] FR"`` (dataset pair, class split and the file's transfer condition, so
    a baselines file and the cuts file made with it share one study), for rows of ours the dataset pair and
    class split as in ``StudyConfig.study_name()``. The original's files name their datasets in the params
    dict (our exports) or not at all: then ``source_dataset`` / ``target_dataset`` if given, else a folder in
    the path (``FashionMNIST/``, ``MNIST_to_FashionMNIST/``), else ``"MNIST"``.
    """
    if not paths_or_dirs:
        raise ValueError("paths_or_dirs: give at least one results file or directory")
    rows: list[dict] = []
    for path, explicit in _expand_paths(paths_or_dirs, ("*.jsonl", "*.json")):
        file_rows = _rows_from_file(path, study, source_dataset, target_dataset, strict=explicit)
        rows.extend(file_rows or [])
    return drop_repeated_runs(_tidy(rows)).reset_index(drop=True)


def transfer_study_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The rows a folder's study figures show: the what-transfers controls, which share the headline
    study's store, left to their own notebook (``what_transfers.ipynb``), and fractions where no transfer
    arm has run yet (a baseline alone compares nothing) left out."""
    rows = df[~df["condition"].isin(WHAT_TRANSFERS)]
    compared = pd.MultiIndex.from_frame(rows.loc[rows["condition"] != "baseline", ["study", "fraction"]])
    return rows[pd.MultiIndex.from_frame(rows[["study", "fraction"]]).isin(compared)]


def drop_repeated_runs(df: pd.DataFrame) -> pd.DataFrame:
    """Keep one copy of each run read twice (one store named twice, or a store and its export), preferring
    the fuller row.

    Copies agree on the run and its results (``_RUN_KEY``). Rows that name their store (``config_hash``,
    ``protocol``, ``n_val``: written by the engine) are copies only of rows of the same store, so two
    stores whose runs happen to score alike (e.g. two protocols) both stay; a row that names none (the
    original format) is a copy of any fuller row with the same run and results.
    """
    key = [c for c in _RUN_KEY if c in df.columns]
    if len(key) < 4:
        return df
    identity = [c for c in _RUN_IDENTITY if c in df.columns]
    richness = df.notna().sum(axis=1)
    kept = df.assign(_rich=richness).sort_values("_rich", ascending=False, kind="stable")
    kept = kept.drop_duplicates(key + identity)
    if identity:  # an anonymous row (no store named) is a copy of a fuller row with the same results
        anonymous = kept[identity].isna().all(axis=1).to_numpy()
        runs = [tuple(_hashable(v) for v in values) for values in kept[key].itertuples(index=False)]
        named = {run for run, anon in zip(runs, anonymous) if not anon}
        kept = kept[[not (anon and run in named) for run, anon in zip(runs, anonymous)]]
    return df.loc[sorted(kept.index)]


def protocol_variant(df: pd.DataFrame) -> pd.Series:
    """Variant label of each row, as the engine wrote it (``functions.engine.protocols`` decides it).

    Rows that carry none were made under the original protocol: the original study's files, and stores
    written before protocols existed."""
    if "protocol_variant" not in df:
        return pd.Series("original", df.index, dtype=object)
    return df["protocol_variant"].fillna("original").astype(object)


def init_scheme(df: pd.DataFrame) -> pd.Series:
    """How each row's fresh layers were initialised: ``"crn"`` (shared across arms) or ``"independent"``
    (rows written before common random numbers, which carry no ``init``)."""
    if "init" not in df:
        return pd.Series("independent", df.index, dtype=object)
    return df["init"].fillna("independent").astype(object)


def with_settings(df: pd.DataFrame) -> pd.DataFrame:
    """Repeated runs dropped and a ``setting`` column: each condition with its own copy of the baseline.

    Rows are paired only with rows of the same protocol variant and initialisation scheme: when a frame
    mixes them (a ``results/protocols`` folder, or CRN stores read with older ones), each kind gets its own
    settings, named ``"FR · realistic"`` (``"FR · original · independent init"``), each with its own baseline."""
    df = drop_repeated_runs(df)
    init = init_scheme(df)
    kinds = protocol_variant(df) + (np.where(init == "crn", "", " · independent init") if init.nunique() > 1 else "")
    if kinds.nunique() > 1:
        parts = [_settings_of(rows).assign(setting=lambda d, k=kind: d["setting"] + f" · {k}")
                 for kind, rows in df.groupby(kinds, sort=False)]
        df = pd.concat(parts, ignore_index=True)
    else:
        df = _settings_of(df)
    return df.assign(lr_setting=lr_setting(df)) if "lr" in df.columns else df


def merge_equivalent_arms(df: pd.DataFrame, n_blocks: int | None = None) -> pd.DataFrame:
    """One arm per network-and-training: (condition, cut) pairs with the same
    :func:`~functions.engine.conditions.arm_signature` (e.g. FR, FT, AnB at the last cut and ``head_only``)
    are the same runs under several names. Their rows are kept once, under the first name in the study's
    order (baseline first), with column ``same_as`` listing every name (``"FR cut 4 = FT cut 4"``); rows
    of arms without a twin get ``same_as`` None. ``n_blocks``: default, per study, the largest cut present.
    """
    if df.empty or "condition" not in df:
        return df.assign(same_as=None)
    parts = []
    for _, rows in df.groupby("study", sort=False) if "study" in df else [(None, df)]:
        blocks = n_blocks if n_blocks is not None else int(max(0, rows["cut"].max()))
        order = ["baseline"] + [c for c in ordered_conditions(rows["condition"]) if c != "baseline"]
        present = sorted({(c, int(k)) for c, k in zip(rows["condition"], rows["cut"])},
                         key=lambda a: (order.index(a[0]), a[1]))
        rows = rows.assign(same_as=None)
        for group in equivalent_arms(present, blocks):
            if len(group) < 2:
                continue
            (keep_c, keep_k), others = group[0], group[1:]
            label = " = ".join(_arm_text(c, k) for c, k in group)
            is_kept = (rows["condition"] == keep_c) & (rows["cut"] == keep_k)
            twins = pd.Series(False, index=rows.index)
            for c, k in others:
                twins |= (rows["condition"] == c) & (rows["cut"] == k)
            # a repeat only a twin ran is still that arm's run: keep it under the first name
            kept_runs = set(zip(rows.loc[is_kept, "fraction"], rows.loc[is_kept, "repeat"]))
            extra = twins & np.array([run not in kept_runs for run in zip(rows["fraction"], rows["repeat"])])
            extra_rows = rows[extra].drop_duplicates(["fraction", "repeat"]).assign(condition=keep_c, cut=keep_k)
            rows = pd.concat([rows[~twins], extra_rows])
            rows.loc[(rows["condition"] == keep_c) & (rows["cut"] == keep_k), "same_as"] = label
        parts.append(rows)
    return pd.concat(parts).sort_index(kind="stable")


def _arm_text(condition: str, cut: int) -> str:
    return "baseline" if condition == "baseline" else f"{condition} cut {cut}"


def lr_setting(df: pd.DataFrame) -> pd.Series:
    """The learning rate as a setting of each row: ``"0.001"``, or ``"tuned"`` when the run chose its rate
    from an ``lr_grid`` (its ``lr`` is then an outcome, and grouping by it would break the pairing)."""
    tuned = df["lr_grid"].map(lambda g: isinstance(g, (list, tuple, np.ndarray)) and len(g) > 0) \
        if "lr_grid" in df else pd.Series(False, df.index)
    return pd.Series(np.where(tuned, "tuned", df["lr"].map(lambda v: f"{v:g}" if pd.notna(v) else "–")),
                     index=df.index, dtype=object)


def _settings_of(df: pd.DataFrame) -> pd.DataFrame:
    """:func:`with_settings` for rows of one protocol variant."""
    if "study" not in df.columns:
        df = df.assign(study="")
    if "condition" not in df.columns:
        return df.assign(setting="all")
    if not (df["cut"] != -1).any():
        return df.assign(setting="baseline")
    match = [c for c in BASELINE_MATCH if c in df.columns]
    expanded = expand_baselines(df, match=match)
    if (expanded["setting"] != "baseline").any():  # baselines no condition uses would be a lone panel
        expanded = expanded[expanded["setting"] != "baseline"]
    return expanded.reset_index(drop=True)


def _hashable(value: Any) -> Any:
    """A value usable in a dict key: lists → tuples, NaN/NA → None."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return tuple(_hashable(v) for v in value)
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    return value


BASELINE_MATCH = ("source_dataset", "target_dataset", "pretrain_classes", "finetune_classes", "depth",
                  "num_channels", "kernel_size", "activation", "pooling")


def expand_baselines(df: pd.DataFrame, match: Iterable[str] = BASELINE_MATCH) -> pd.DataFrame:
    """Give every transfer condition its own copy of the matching baseline rows, in a ``setting`` column.

    One baseline serves several conditions (FR, F, FT … are all compared with the same from-scratch runs),
    and a store may hold several conditions under one study name, so ``arm`` alone ("cut 2") is ambiguous.
    After this, group by ``("study", "setting", "fraction")``: each setting holds one condition's cuts and
    the baseline rows with equal ``match`` columns (from the same study when it has them, else from any
    study; duplicates of one (fraction, repeat) kept once), copied under that study's name. Baseline rows
    that match no condition stay, with ``setting == "baseline"``.
    """
    match = list(match)
    missing = [c for c in match + ["study", "condition", "cut", "fraction", "repeat"] if c not in df.columns]
    if missing:
        raise ValueError(f"df: missing columns {missing}")
    is_base = df["cut"] == -1
    base, cuts = df[is_base], df[~is_base].copy()
    cuts["setting"] = cuts["condition"]
    base_keys = [tuple(_hashable(v) for v in values) for values in base[match].itertuples(index=False)]
    used = np.zeros(len(base), dtype=bool)
    parts = [cuts]
    for (study, condition), rows in cuts.groupby(["study", "condition"], sort=False, dropna=False):
        key = tuple(_hashable(v) for v in rows.iloc[0][match])
        candidates = np.array([k == key for k in base_keys], dtype=bool)
        same_study = candidates & (base["study"].to_numpy() == study)
        chosen = same_study if same_study.any() else candidates
        used |= chosen
        copies = base[chosen].copy()
        copies["_own"] = copies["study"] == study
        copies = (copies.sort_values("_own", ascending=False, kind="stable")
                  .drop_duplicates(["fraction", "repeat"]).drop(columns="_own").sort_index())
        copies["study"], copies["setting"] = study, condition
        parts.append(copies)
    rest = base[~used].copy()
    rest["setting"] = "baseline"
    parts.append(rest)
    return pd.concat(parts, ignore_index=True)


def summary_table(df: pd.DataFrame, metric: str = "test_acc", stat: str = "median",
                  arm_col: str = "arm") -> pd.DataFrame:
    """Wide table: one row per fraction (per study and fraction when there are several), one column per arm.

    ``stat`` in ``median``, ``mean``, ``iqm`` (mean of the middle 50 %), ``std``, ``count``.
    """
    if stat not in SUMMARY_STATS:
        raise ValueError(f"stat {stat!r} is unknown; allowed: {list(SUMMARY_STATS)}")
    for column in (metric, arm_col, "fraction"):
        if column not in df.columns:
            raise ValueError(f"df has no column {column!r} (metric/arm_col); columns: {list(df.columns)}")
    index = ["fraction"] if df.get("study", pd.Series(dtype=object)).nunique() <= 1 else ["study", "fraction"]
    grouped = df.groupby(index + [arm_col], dropna=False)[metric]
    if stat == "iqm":
        from scipy.stats import trim_mean

        values = grouped.apply(lambda x: trim_mean(x.dropna(), 0.25) if x.notna().any() else np.nan)
    else:
        values = grouped.agg(stat)
    wide = values.unstack(arm_col)
    wide = wide[sorted(wide.columns, key=arm_sort_key)]
    wide.columns.name = arm_col
    return wide


# ----------------------------------------------------------------------------- clustering
def _snake(name: str) -> str:
    """``"Percentage"`` → ``fraction``; other keys lower-case snake (``"Some Key"`` → ``some_key``)."""
    if name.strip().lower() == "percentage":
        return "fraction"
    text = re.sub(r"(?<=[a-z0-9])(?=[A-Z][a-z])", "_", name.strip())
    return re.sub(r"[^0-9a-zA-Z]+", "_", text).strip("_").lower()


def _clustering_rows(path: Path, strict: bool) -> list[dict] | None:
    if path.suffix == ".csv":
        rows = pd.read_csv(path).to_dict("records")
    elif path.suffix == ".jsonl":
        rows = read_jsonl(path)
    else:
        rows = _read_json(path)
    ok = isinstance(rows, list) and all(isinstance(r, dict) for r in rows)
    if ok and rows:
        keys = {_snake(k) for k in rows[0]}
        ok = {"layer", "ari"} <= keys
    if not ok:
        if strict:
            raise ValueError(f"{path}: not a clustering results file (a list of rows with Layer and ARI)")
        return None
    return [{**{_snake(k): v for k, v in r.items()}, "source": str(path)} for r in rows]


def load_clustering(*paths_or_dirs: str | os.PathLike) -> pd.DataFrame:
    """Clustering results (the original's JSON lists, or our JSON-lines/CSV) as one tidy frame.

    Columns: fraction, repeat, layer, precision, recall, accuracy, ari, dataset, split (the original's
    capitalised keys lower-cased, ``Percentage`` → ``fraction``), then any extra keys (method, channel …),
    then ``source``. Directories are scanned for ``*.json``, ``*.jsonl``, ``*.csv`` holding such rows.
    """
    if not paths_or_dirs:
        raise ValueError("paths_or_dirs: give at least one clustering file or directory")
    rows: list[dict] = []
    for path, explicit in _expand_paths(paths_or_dirs, ("*.jsonl", "*.json", "*.csv")):
        rows.extend(_clustering_rows(path, strict=explicit) or [])
    df = pd.DataFrame(rows)
    for column in CLUSTERING_COLUMNS + ["source"]:
        if column not in df.columns:
            df[column] = None
    for column in ("fraction", "precision", "recall", "accuracy", "ari"):
        df[column] = pd.to_numeric(df[column]).astype("float64")
    for column in ("repeat", "layer"):
        numbers = pd.to_numeric(df[column], errors="coerce")
        if numbers.notna().sum() == df[column].notna().sum():  # keep named layers ("conv3") as text
            df[column] = numbers.astype("Int64")
    extras = [c for c in df.columns if c not in CLUSTERING_COLUMNS + ["source"]]
    return df[CLUSTERING_COLUMNS + extras + ["source"]]
