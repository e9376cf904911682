"""How long the results explorer (``functions.analysis.widgets.ResultsExplorer``) makes a person wait.

Times, on the results shipped in the repository: opening the explorer at the repository root (scan for
sources, read the first MNIST store, draw), switching the source to every other folder it lists (first
visit: read + statistics + draw), switching back (cached), and changing the plot type. Prints one line
per step and a JSON summary. Run from the repository root, with nothing else heavy running:

    python benchmarks/explorer_speed.py
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import time

import matplotlib

matplotlib.use("Agg")

from functions.analysis.widgets import ResultsExplorer  # noqa: E402  (after the backend is chosen)


def timed(label: str, action, timings: dict) -> None:
    """Run ``action()`` and record its wall seconds under ``label``."""
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # outside Jupyter, display() would print reprs
        action()
    timings[label] = round(time.perf_counter() - start, 3)
    print(f"{label:<55} {timings[label]:7.2f} s", flush=True)


def main() -> None:
    os.environ.setdefault("TQDM_DISABLE", "1")
    timings: dict[str, float] = {}
    holder = {}
    timed("open (scan, read the first MNIST store, draw)", lambda: holder.update(x=ResultsExplorer(root=".")),
          timings)
    explorer = holder["x"]
    source = explorer.controls["source"]
    first = source.value
    others = [value for _, value in source.options if value != first]
    print(f"{len(source.options)} sources listed; opened on {first}")
    for value in others:
        timed(f"switch to {value} (first visit)", lambda v=value: setattr(source, "value", v), timings)
    timed(f"back to {first} (cached)", lambda: setattr(source, "value", first), timings)
    plot = explorer.controls["plot"]
    for kind in [k for k in plot.options if k != plot.value]:
        timed(f"plot type → {kind}", lambda k=kind: setattr(plot, "value", k), timings)
    first_visits = [s for label, s in timings.items() if label.endswith("(first visit)")]
    print(json.dumps({"sources": len(source.options), "open_s": timings[next(iter(timings))],
                      "median_first_visit_s": sorted(first_visits)[len(first_visits) // 2] if first_visits else None,
                      "max_first_visit_s": max(first_visits, default=None), "timings": timings}))


if __name__ == "__main__":
    main()
