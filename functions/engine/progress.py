"""What a grid shows while it runs, whoever trains it: a progress bar and one INFO log line per stored run.

Every executor stores a finished run through :class:`GridProgress`, so the bar, the log line and the store
append happen in one place, in the process that owns the store.
"""
from __future__ import annotations

import logging
import statistics
from typing import Any, Iterable

from tqdm.auto import tqdm

# One INFO line per finished run (and per pretraining): a sign of life for a grid run from a terminal.
# Nothing is shown unless someone attaches a handler (functions.notebook.log_to_terminal does, in notebooks).
log = logging.getLogger(__name__)


def log_run(done: int, total: int, row: dict[str, Any]) -> None:
    """Log one finished run: ``MNIST[0-4]->MNIST[5-9] 12/120 FR f=0.01 k=2 r=3 test_acc=0.951 (3.2 s)``."""
    if not log.isEnabledFor(logging.INFO):
        return
    variant = row.get("protocol_variant", "original")
    where = "" if variant == "original" else f" [{variant}]"
    log.info("%s%s %d/%d %s f=%g k=%d r=%d test_acc=%.3f (%.1f s)", row.get("study", "?"), where, done, total,
             row["condition"], row["fraction"], row["cut"], row["repeat"], row["test_acc"], row.get("seconds", 0.0))


def training_estimate(rows: Iterable[dict[str, Any]], todo: Iterable) -> float | None:
    """Seconds of training the runs ``todo`` (RunSpecs) would take, each at the median ``seconds`` of the
    stored runs most like it: the same condition, fraction and cut, else the same condition and fraction,
    else the same fraction. None when some run has nothing alike stored (nothing to estimate from)."""
    levels: list[dict[tuple, list[float]]] = [{}, {}, {}]
    for row in rows:
        if row.get("seconds") is None:
            continue
        for level, key in zip(levels, _likeness(row["condition"], row["fraction"], row["cut"])):
            level.setdefault(key, []).append(float(row["seconds"]))
    total = 0.0
    for spec in todo:
        alike = next((level[key] for level, key in zip(levels, _likeness(spec.condition, spec.fraction, spec.cut))
                      if key in level), None)
        if alike is None:
            return None
        total += statistics.median(alike)
    return total


def _likeness(condition: str, fraction: float, cut: int) -> tuple[tuple, ...]:
    """The keys a run is matched on, from the closest to the loosest."""
    return (condition, float(fraction), int(cut)), (condition, float(fraction)), (float(fraction),)


def duration_text(seconds: float) -> str:
    """``45 s``, ``12 min``, ``3.4 h``."""
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


class GridProgress:
    """One pass over pending runs: :meth:`store` appends a finished run, logs it and moves the bar.

    Use as a context manager (the bar closes on the way out). ``appended`` counts the rows written (a key
    some other process stored first is not written twice).
    """

    def __init__(self, study, total: int, where: str = "", enabled: bool = True):
        self.study, self.total = study, total
        desc = study.cfg.study_name() + (f" on {where}" if where else "")
        self.bar = tqdm(total=total, desc=desc, disable=not enabled)
        self.done = self.appended = 0

    def store(self, row: dict[str, Any]) -> bool:
        """Append ``row`` to the study's store (durably, at once); True when written."""
        written = self.study.store.append(row)
        self.appended += written
        self.done += 1
        log_run(self.done, self.total, row)
        self.bar.update()
        self.bar.set_postfix(cond=row["condition"], f=row["fraction"], k=row["cut"], acc=f"{row['test_acc']:.3f}")
        return written

    def skip(self, n: int) -> None:
        """Move the bar past ``n`` runs that failed (their error is reported at the end of the pass)."""
        self.bar.update(n)

    def __enter__(self) -> "GridProgress":
        return self

    def __exit__(self, *exc) -> None:
        self.bar.close()
