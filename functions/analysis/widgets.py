"""An ipywidgets explorer of results: pick a results store or folder, a study, a condition, fractions, a
metric and a plot type; the figure is redrawn on every change.

>>> explorer = ResultsExplorer(root="..")   # scans results/ folders for stores (and the original's files)
>>> explorer.widget                         # display it in a notebook

Exports of our stores (``original_format/`` folders) are not listed: they hold the same runs as the
stores; nor are the smoke profile's scratch folders (``results/…/smoke/``, git-ignored, so not in a fresh
clone) unless ``scratch=True``. Without a given source it opens on the first MNIST results folder.

Displayed where no widget can be drawn (a notebook saved without widget state, GitHub, a terminal), the
explorer says in one line what it is and what it would show, not a widget's raw ``repr``.

Each source is read once and its statistics (the tables' significance against the baseline, drawn on the
box and line plots) are computed once per selection: switching plot type, or back to a source or selection
seen before, reuses them; a store that changed on disk (size or modification time) is read again.

It also runs without a notebook front end (set ``explorer.controls[name].value`` and read
``explorer.figure``), which is how the tests drive it.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import ipywidgets as w
import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import display

from functions.analysis import figures
from functions.analysis.results import load_results
from functions.engine.conditions import ordered_conditions
from functions.engine.original_format import EXPORT_DIR

FRAME = "<frame>"  # source value standing for a frame given to the explorer
ALL_CONDITIONS = "all"
PLOT_TYPES = ("box", "median lines", "diff to baseline", "heatmap")
METRICS = figures.METRICS
FIRST_DATASET = "MNIST"  # the explorer opens on this dataset folder's results when it has any
_SKIPPED_DIRS = {"__pycache__", "node_modules", ".git", ".ipynb_checkpoints", EXPORT_DIR}
SCRATCH_DIR = "smoke"  # results/…/smoke/: the smoke profile's git-ignored scratch results
_SNIFF_BYTES = 65536


# ----------------------------------------------------------------------------- finding results
def looks_like_results(path: str | os.PathLike) -> bool:
    """Whether a ``.jsonl``/``.json`` file holds results rows (ours or the original's), from its start."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            head = fh.read(_SNIFF_BYTES)
    except OSError:
        return False
    if path.suffix == ".jsonl":
        first = head.split("\n", 1)[0]
        try:
            row = json.loads(first)
        except json.JSONDecodeError:
            return False
        return isinstance(row, dict) and {"cut", "fraction", "test_acc"} <= row.keys()
    # a JSON list: the original's rows carry sampled_cut_point, ours carry cut/fraction/test_acc
    stripped = head.lstrip()
    return stripped.startswith("[") and ('"sampled_cut_point"' in head
                                         or all(f'"{k}"' in head for k in ("cut", "fraction", "test_acc")))


def find_result_sources(root: str | os.PathLike = ".", scratch: bool = False) -> list[tuple[str, str]]:
    """(label, path) of every results folder and file under ``root``: folders first, then files.

    Looks inside folders named ``results`` (and below) for ``*.jsonl``/``*.json`` that hold results;
    hidden folders, caches, exports (``original_format/``) and stores' ``.claims`` sidecars are skipped, and
    so are the smoke profile's scratch folders (``smoke/``) unless ``scratch``. Labels are paths relative
    to ``root``; a folder's label ends with ``/`` and counts its files.
    """
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"root {str(root)!r} is not a directory")
    skipped = _SKIPPED_DIRS if scratch else _SKIPPED_DIRS | {SCRATCH_DIR}
    folders, files = [], []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in skipped
                             and not d.endswith((".egg-info", ".claims")))
        relative = Path(dirpath).relative_to(root)
        if "results" not in relative.parts:
            continue
        found = [Path(dirpath) / name for name in sorted(filenames)
                 if name.endswith((".jsonl", ".json")) and looks_like_results(Path(dirpath) / name)]
        if found:
            folders.append((f"{relative.as_posix()}/ ({len(found)} files)", str(Path(dirpath))))
            files.extend((p.relative_to(root).as_posix(), str(p)) for p in found)
    return folders + files


def _first_source(options: list[tuple[str, str]]) -> str:
    """The source to open on when none is given: the first results folder of the MNIST study folder (its
    label starts with ``MNIST/``), else the first source."""
    for label, value in options:
        if Path(value).is_dir() and Path(label.split(" (")[0]).parts[:1] == (FIRST_DATASET,):
            return value
    return options[0][1]


def _signature(value: str) -> tuple:
    """What identifies the content of a source on disk: (file, mtime, size) of the files it reads."""
    path = Path(value)
    try:
        files = (sorted(p for pattern in ("*.jsonl", "*.json") for p in path.glob(pattern) if p.is_file())
                 if path.is_dir() else [path])
        return tuple((p.name, st.st_mtime_ns, st.st_size) for p in files for st in (p.stat(),))
    except OSError:
        return ()


# ----------------------------------------------------------------------------- the explorer
class ResultsExplorer:
    """Dropdowns for source, study, condition, metric and plot type, a fraction multi-select, one figure.

    ``path_or_df``: a results frame (as :func:`functions.analysis.results.load_results` returns), a results
    file or folder, or None (the first MNIST results folder found under ``root``, else the first source).
    ``root`` is scanned for more sources (:func:`find_result_sources`; ``scratch``: also the smoke profile's
    folders). Attributes: ``widget`` (the VBox to display; displaying the explorer itself shows it too),
    ``controls`` (name → widget: source, study, condition, fractions, metric, plot), ``figure`` (the last
    figure drawn, None when the selection cannot be drawn), ``error`` (why not), ``data`` (the loaded
    frame), ``output``.
    """

    def __init__(self, path_or_df: pd.DataFrame | str | os.PathLike | None = None, root: str | os.PathLike = ".",
                 n_boot: int = 500, scratch: bool = False):
        self.n_boot = n_boot
        self.scratch = scratch
        self.figure = None
        self.error: str | None = None
        self.data = pd.DataFrame()
        self._frame: pd.DataFrame | None = None
        self._quiet = False
        self._frames: dict[tuple, pd.DataFrame] = {}  # (source, signature) → loaded frame
        self._summaries: dict[tuple, pd.DataFrame] = {}  # (source, signature, selection) → statistics
        self._version: tuple = ()
        options = self._source_options(path_or_df, root)
        self.output = w.Output()
        self.controls = {
            "source": w.Dropdown(options=options, description="results", layout=w.Layout(width="60%"),
                                 value=options[0][1] if path_or_df is not None else _first_source(options)),
            "study": w.Dropdown(description="study", layout=w.Layout(width="auto")),
            "condition": w.Dropdown(description="condition"),
            "fractions": w.SelectMultiple(description="fractions", rows=6),
            "metric": w.Dropdown(options=list(METRICS), value="test_acc", description="metric"),
            "plot": w.Dropdown(options=list(PLOT_TYPES), value="box", description="plot"),
        }
        c = self.controls
        self.widget = w.VBox([
            c["source"],
            w.HBox([w.VBox([c["study"], c["condition"], c["metric"], c["plot"]]), c["fractions"]]),
            self.output,
        ])
        c["source"].observe(self._on_source, names="value")
        c["study"].observe(self._on_study, names="value")
        for name in ("condition", "fractions", "metric", "plot"):
            c[name].observe(lambda change: self.refresh(), names="value")
        self._load()
        self.refresh()

    # ------------------------------------------------------------------ sources
    def _source_options(self, path_or_df, root) -> list[tuple[str, str]]:
        """Dropdown options: the given frame or path first, then what ``root`` holds."""
        found = find_result_sources(root, scratch=self.scratch) if Path(root).is_dir() else []
        if path_or_df is None:
            if not found:
                raise ValueError(f"path_or_df is None and no results/ folder with results was found "
                                 f"under {str(root)!r}")
            return found
        if isinstance(path_or_df, pd.DataFrame):
            self._frame = path_or_df
            return [("(given frame)", FRAME)] + found
        if isinstance(path_or_df, (str, os.PathLike)):
            path = Path(path_or_df)
            if not path.exists():
                raise ValueError(f"path_or_df {str(path)!r} does not exist; give a results file, folder or frame")
            given = (f"{path.as_posix()}{'/' if path.is_dir() else ''}", str(path))
            return [given] + [o for o in found if Path(o[1]).resolve() != path.resolve()]
        raise ValueError(f"path_or_df must be a DataFrame, a path or None, got {type(path_or_df).__name__}")

    def _read_source(self, value: str) -> pd.DataFrame:
        """The source's frame, read once per content (see :func:`_signature`)."""
        if value == FRAME:
            self._version = (FRAME,)
            return self._frame
        self._version = (value, _signature(value))
        if self._version not in self._frames:
            self._frames = {k: v for k, v in self._frames.items() if k[0] != value}  # drop older contents
            self._frames[self._version] = load_results(value)
        return self._frames[self._version]

    # ------------------------------------------------------------------ option updates
    def _set_options(self, name: str, options, value) -> None:
        """Replace a control's options and value without triggering a redraw per step."""
        control = self.controls[name]
        control.options = options
        control.value = value

    def _load(self) -> None:
        """Read the selected source and fill the study choices."""
        self._quiet = True
        try:
            try:
                self.data = self._read_source(self.controls["source"].value)
                self.error = None
            except ValueError as err:
                self.data, self.error = pd.DataFrame(), f"could not read {self.controls['source'].label}: {err}"
                self._version = ()
            studies = sorted(map(str, self.data["study"].dropna().unique())) if "study" in self.data else []
            current = self.controls["study"].value
            self._set_options("study", studies, current if current in studies else (studies[0] if studies else None))
            self._fill_study_choices()
        finally:
            self._quiet = False

    def _fill_study_choices(self) -> None:
        """Condition, fraction and metric choices of the selected study, keeping what still applies."""
        rows = self._study_rows()
        conditions = ordered_conditions(c for c in rows.get("condition", pd.Series(dtype=object)).dropna()
                                               if c != "baseline") if len(rows) else []
        condition = self.controls["condition"].value
        self._set_options("condition", [ALL_CONDITIONS] + conditions,
                          condition if condition in conditions else ALL_CONDITIONS)
        fractions = sorted(float(f) for f in rows["fraction"].dropna().unique()) if len(rows) else []
        previous = self.controls["fractions"]
        had_all = set(previous.value) == {value for _, value in previous.options}
        # "all fractions" stays all; a narrower choice is kept where it still applies
        chosen = fractions if had_all else [f for f in previous.value if f in fractions] or fractions
        self._set_options("fractions", [(figures.fraction_label(f), f) for f in fractions], tuple(chosen))
        metrics = [m for m in METRICS if m in rows.columns and rows[m].notna().any()] or list(METRICS)
        metric = self.controls["metric"].value
        self._set_options("metric", metrics, metric if metric in metrics else metrics[0])

    def _study_rows(self) -> pd.DataFrame:
        study = self.controls["study"].value
        if self.data.empty or study is None:
            return self.data
        return self.data[self.data["study"].astype(str) == study]

    def _on_source(self, change) -> None:
        self._load()
        self.refresh()

    def _on_study(self, change) -> None:
        if self._quiet:
            return
        self._quiet = True
        try:
            self._fill_study_choices()
        finally:
            self._quiet = False
        self.refresh()

    # ------------------------------------------------------------------ display
    def __repr__(self) -> str:
        """One line for a reader without a live kernel: what the explorer holds and how to use it."""
        n = sum(1 for _, value in self.controls["source"].options if value == FRAME or Path(value).is_dir())
        return (f"Results explorer over {n} results folder(s), open on {self.controls['source'].label!r}: "
                "run the notebook in JupyterLab to pick a folder, study, condition, fractions, metric and plot.")

    def _repr_mimebundle_(self, **kwargs) -> dict:
        """The widget for a front end that draws widgets, this explorer's one-line :meth:`__repr__` as text."""
        bundle = self.widget._repr_mimebundle_(**kwargs) or {}
        return {**bundle, "text/plain": repr(self)}

    # ------------------------------------------------------------------ drawing
    def selection(self) -> pd.DataFrame:
        """The rows the controls select: study, condition (with its baseline), fractions, metric present."""
        rows = self._study_rows()
        if rows.empty:
            return rows
        condition = self.controls["condition"].value
        if condition not in (None, ALL_CONDITIONS):
            rows = rows[rows["condition"].isin([condition, "baseline"])]
        fractions = list(self.controls["fractions"].value)
        rows = rows[rows["fraction"].isin(fractions)]
        metric = self.controls["metric"].value
        return rows[rows[metric].notna()] if metric in rows.columns else rows.iloc[:0]

    def _summary(self, rows: pd.DataFrame, metric: str) -> pd.DataFrame | None:
        """The selection's statistics (:func:`figures.significance_summary`), computed once per selection."""
        if "repeat" not in rows.columns or not (rows["arm"] == "baseline").any():
            return None
        c = self.controls
        key = (self._version, c["study"].value, c["condition"].value, tuple(sorted(c["fractions"].value)), metric)
        if key not in self._summaries:
            self._summaries[key] = figures.significance_summary(rows, metric=metric)
        return self._summaries[key]

    def _draw(self, rows: pd.DataFrame):
        metric, kind = self.controls["metric"].value, self.controls["plot"].value
        if kind == "box":
            return figures.box_by_cut(rows, metric=metric, summary=self._summary(rows, metric))
        if kind == "median lines":
            return figures.median_lines(rows, metric=metric, summary=self._summary(rows, metric))
        if kind == "diff to baseline":
            return figures.diff_to_baseline(rows, metric=metric, n_boot=self.n_boot)
        if kind == "heatmap":
            return figures.heatmap(rows, metric=metric)
        raise ValueError(f"plot {kind!r} is unknown; allowed: {list(PLOT_TYPES)}")

    def refresh(self):
        """Redraw the figure for the current controls into the output area; returns it (None on error)."""
        if self._quiet:
            return self.figure
        figure, message = None, self.error if self.data.empty else None
        if message is None:
            try:
                rows = self.selection()
                if rows.empty:
                    raise ValueError("no runs match the selection (pick at least one fraction)")
                figure = self._draw(rows)
            except ValueError as err:
                message = str(err)
        if self.figure is not None:
            plt.close(self.figure)
        self.figure, self.error = figure, message
        with self.output:
            self.output.clear_output(wait=True)
            if figure is not None:
                display(figure)
            else:
                print(message)
        if figure is not None:
            plt.close(figure)  # shown in the output area only, not again by pyplot at the end of the cell
        return figure
