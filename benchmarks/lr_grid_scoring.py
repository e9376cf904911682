"""Learning-rate grid: scoring only the kept rate's network vs scoring every rate tried.

Under the fair protocol each run trains once per rate of ``lr_grid`` and keeps the one that validates
best. The engine scores only that network on the train and test splits (``Study.train``); the naive path,
what the engine did before, scores every rate's network and throws all but one score away. Both paths
train the same runs (stored keys of the shipped FashionMNIST -> MNIST ``cpu`` study, alternating path per
key so that drift of the machine hits both) and must give the same row; the test accuracy is also checked
against the stored row (equal on the machine that made it; other CPUs differ in the 4th decimal).

Prints one line per run, the ratio of summed seconds and a final JSON line (``--out`` saves it). Run it on
a quiet machine with ``TL_STUDY_DATA`` pointing at the real datasets.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch

from functions.engine.conditions import RunSpec
from functions.engine.study import Study, _better_on_validation
from functions.engine.training import Tensors
from functions.notebook import study_config
from report import emit  # benchmarks/report.py: this script's folder is on sys.path

REPO = Path(__file__).resolve().parents[1]
SETTING = dict(source_dataset="FashionMNIST", target_dataset="MNIST", class_split="all")
KEYS = [RunSpec("baseline", 0.001, -1, 0), RunSpec("baseline", 0.01, -1, 0), RunSpec("FR", 0.001, 2, 0),
        RunSpec("FR", 0.01, 2, 1), RunSpec("baseline", 0.1, -1, 0)]


def naive_row(study: Study, spec: RunSpec) -> dict:
    """The run as the engine trained it before: every rate's network scored on train and test."""
    train_idx, val_idx = study.run_rows(spec.fraction, spec.repeat)
    best, seconds = None, 0.0
    for lr in study.cfg.lr_grid:
        model = study.build_model(spec).to(study.device)
        tensors = Tensors.of_split(study.target, study.device, train_idx, val_idx)
        result = study.fit_run(model, tensors, lr, spec, scores=True)
        seconds += result.seconds
        if best is None or _better_on_validation(result, best[1]):
            best = (lr, result)
    lr, result = best
    return dict(lr=lr, test_acc=result.test_acc, train_acc=result.train_acc, seconds=seconds)


def timed(make_row) -> tuple[dict, float]:
    start = time.perf_counter()
    row = make_row()
    return row, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=4,
                        help=f"how many of the {len(KEYS)} keys to time (the last one: 10 %%)")
    parser.add_argument("--out", help="also write the JSON line to this file")
    args = parser.parse_args()
    torch.set_num_threads(1)  # as a pooled grid worker trains
    os.chdir(REPO / "cross_domain")
    study = Study(study_config("cpu", **SETTING), verbose=False)
    stored = {row["key"]: row for row in study.store.all()}
    study.run_one(KEYS[0])  # warm-up: data, pretrained model, kernels
    totals = {"naive": 0.0, "engine": 0.0}
    same = same_as_stored = 0
    for i, spec in enumerate(KEYS[:args.runs]):
        paths = [("naive", lambda: naive_row(study, spec)), ("engine", lambda: study.run_one(spec))]
        rows = {}
        for name, make_row in (paths if i % 2 == 0 else paths[::-1]):
            rows[name], wall = timed(make_row)
            totals[name] += wall
        naive, engine = rows["naive"], rows["engine"]
        identical = all(naive[f] == engine[f] for f in ("lr", "test_acc", "train_acc"))
        same += identical
        same_as_stored += engine["test_acc"] == stored.get(engine["key"], {}).get("test_acc")
        print(f"{engine['key']:<22} naive {naive['seconds']:6.1f} s  engine {engine['seconds']:6.1f} s  "
              f"same row: {identical}  test_acc {engine['test_acc']:.4f} (stored "
              f"{stored.get(engine['key'], {}).get('test_acc', float('nan')):.4f})", flush=True)
    n = min(args.runs, len(KEYS))
    ratio = totals["naive"] / totals["engine"]
    print(f"naive {totals['naive']:.1f} s, engine {totals['engine']:.1f} s over {n} runs: {ratio:.2f}x")
    emit({"benchmark": "lr_grid_scoring", "study": study.cfg.study_name(), "lr_grid": study.cfg.lr_grid,
          "runs": n, "naive_seconds": round(totals["naive"], 1), "engine_seconds": round(totals["engine"], 1),
          "ratio": round(ratio, 2), "rows_identical": same, "test_acc_as_stored": same_as_stored,
          "load_avg_1min": round(os.getloadavg()[0], 2), "torch": torch.__version__}, args.out)


if __name__ == "__main__":
    main()
