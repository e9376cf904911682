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


def log_run(done: int, total: int, row: dict[str, Any], left: str = "") -> None:
    """Log one finished run: ``MNIST[0-4]->MNIST[5-9] 12/120 FR f=0.01 k=2 r=3 test_acc=0.951 (3.2 s)``,
    then ``left`` (how much training is left, when known)."""
    if not log.isEnabledFor(logging.INFO):
        return
    variant = row.get("protocol_variant", "original")
    where = "" if variant == "original" else f" [{variant}]"
    log.info("%s%s %d/%d %s f=%g k=%d r=%d test_acc=%.3f (%.1f s)%s", row.get("study", "?"), where, done, total,
             row["condition"], row["fraction"], row["cut"], row["repeat"], row["test_acc"], row.get("seconds", 0.0),
             f"; {left}" if left else "")


def run_prices(rows: Iterable[dict[str, Any]], todo: Iterable) -> dict[str, float] | None:
    """Seconds of training each run of ``todo`` (RunSpecs) would take, by key, each at the median ``seconds``
    of the stored runs most like it: the same condition, fraction and cut, else the same condition and
    fraction, else the same fraction. None when some run has nothing alike stored (nothing to price by)."""
    levels: list[dict[tuple, list[float]]] = [{}, {}, {}]
    for row in rows:
        if row.get("seconds") is None:
            continue
        for level, key in zip(levels, _likeness(row["condition"], row["fraction"], row["cut"])):
            level.setdefault(key, []).append(float(row["seconds"]))
    prices = {}
    for spec in todo:
        alike = next((level[key] for level, key in zip(levels, _likeness(spec.condition, spec.fraction, spec.cut))
                      if key in level), None)
        if alike is None:
            return None
        prices[spec.key] = statistics.median(alike)
    return prices


def training_estimate(rows: Iterable[dict[str, Any]], todo: Iterable) -> float | None:
    """Seconds of training the runs ``todo`` would take at the stored runs' pace (:func:`run_prices`, summed);
    None when some run has nothing alike stored."""
    prices = run_prices(rows, todo)
    return None if prices is None else float(sum(prices.values()))


class Pace:
    """How much training a pass has left, at this machine's pace.

    Stored ``seconds`` come from whichever machine made the rows, so an estimate from them can be off by a
    large factor on another machine (3x measured on one). Each finished run compares its own seconds with
    its price; from ``MIN_RUNS`` runs on, the runs still to do are priced at the ratio seen so far.
    """

    MIN_RUNS = 3

    def __init__(self, prices: dict[str, float] | None):
        self.left = dict(prices or {})  # price of every run not yet finished or skipped, by key
        self.price_left = sum(self.left.values())  # kept up to date: no re-summing per stored run
        self.actual = self.expected = 0.0
        self.runs = 0

    def finished(self, key: str, seconds: float | None = None) -> None:
        """A run is done (``seconds``: what it took here) or will not be trained here (no seconds)."""
        price = self.left.pop(key, None)
        if price is not None:
            self.price_left -= price
        if price and seconds is not None:
            self.actual, self.expected, self.runs = self.actual + seconds, self.expected + price, self.runs + 1

    def ratio(self) -> float | None:
        """This machine's seconds per stored second, once ``MIN_RUNS`` runs were priced and timed."""
        return self.actual / self.expected if self.runs >= self.MIN_RUNS and self.expected > 0 else None

    def seconds_left(self) -> float | None:
        """Seconds of training the runs not yet finished will take here, or None before the pace is known."""
        ratio = self.ratio()
        return None if ratio is None or not self.left else ratio * self.price_left

    def text(self) -> str:
        """``about 1.2 h of training left (2.4x the stored runs' pace)``, or nothing before the pace is known."""
        return self.describe(self.seconds_left())

    def describe(self, seconds_left: float | None) -> str:
        """:meth:`text` for an already computed :meth:`seconds_left`."""
        return "" if seconds_left is None else \
            f"about {duration_text(seconds_left)} of training left ({self.ratio():.1f}x the stored runs' pace)"


def _likeness(condition: str, fraction: float, cut: int) -> tuple[tuple, ...]:
    """The keys a run is matched on, from the closest to the loosest."""
    return (condition, float(fraction), int(cut)), (condition, float(fraction)), (float(fraction),)


def duration_text(seconds: float) -> str:
    """``45 s``, ``12 min``, ``3.4 h``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


class GridProgress:
    """One pass over pending runs: :meth:`store` appends a finished run, logs it and moves the bar.

    Use as a context manager (the bar closes on the way out). ``appended`` counts the rows written (a key
    some other process stored first is not written twice). ``pace`` says how much training is left.
    """

    def __init__(self, study, todo: list, where: str = "", enabled: bool = True):
        self.study, self.total = study, len(todo)
        self.pace = Pace(run_prices(study.store.all(), todo) if todo else None)
        desc = study.cfg.study_name() + (f" on {where}" if where else "")
        self.bar = tqdm(total=self.total, desc=desc, disable=not enabled)
        self.done = self.appended = 0

    def store(self, row: dict[str, Any]) -> bool:
        """Append ``row`` to the study's store (durably, at once); True when written."""
        written = self.study.store.append(row)
        self.appended += written
        self.done += 1
        self.pace.finished(row["key"], row.get("seconds"))
        seconds_left = self.pace.seconds_left()  # once per stored run, for the log line and the bar
        log_run(self.done, self.total, row, self.pace.describe(seconds_left))
        self.bar.update()
        postfix = dict(cond=row["condition"], f=row["fraction"], k=row["cut"], acc=f"{row['test_acc']:.3f}")
        if seconds_left is not None:
            postfix["training_left"] = duration_text(seconds_left)
        self.bar.set_postfix(postfix)
        return written

    def skip(self, specs: list) -> None:
        """Move the bar past runs this pass will not train (stored or claimed elsewhere, or failed: their
        error is reported at the end of the pass)."""
        for spec in specs:
            self.pace.finished(spec.key)
        self.bar.update(len(specs))

    def __enter__(self) -> "GridProgress":
        return self

    def __exit__(self, *exc) -> None:
        self.bar.close()
