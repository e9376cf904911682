"""Dask scaling: one grid in-process and on a LocalCluster of 1, 2, … worker processes.

The grid: the ``cpu`` profile's MNIST study (classes 0–4 → 5–9, 4 blocks × 16 channels, baseline + FR
at every cut, fractions 0.001/0.01/0.1 × 8 repeats: 120 runs). ``--quick`` keeps fractions
0.001 and 0.01 with 4 repeats (40 runs), so that three timings finish in minutes.

Every configuration starts from an empty results store and the same saved pretrained model
(``benchmarks/_cache/pretrained_models``; pretrained on first use). Cluster start-up is timed apart from
the grid (a lab starts its cluster once). Each cluster's rows are compared with the in-process rows:
same seeds must give the same accuracies whichever worker ran them.

Data: ``$TL_STUDY_DATA`` (MNIST in torchvision's layout). Prints progress and a final JSON line.
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import time
from pathlib import Path

import torch

from functions.engine.config import StudyConfig
from functions.engine.distributed import make_executor
from functions.engine.pool import available_cores
from functions.engine.study import IN_PROCESS, Study
from report import emit  # benchmarks/report.py: this script's folder is on sys.path

CACHE = Path(__file__).resolve().parent / "_cache"
CONDITIONS = ("baseline", "FR")
COMPARED = ("train_acc", "val_acc", "test_acc", "epochs")


def config(quick: bool) -> StudyConfig:
    """The cpu profile's MNIST grid (or its quick subset), stored under benchmarks/_cache."""
    subset = dict(percentages=[0.001, 0.01], repeats=4) if quick else {}
    return StudyConfig.from_profile("cpu", **subset, pretrained_dir=str(CACHE / "pretrained_models"),
                                    results_dir=str(CACHE / "dask_scaling" / "unused"))


def timed_grid(cfg: StudyConfig, label: str, make=None) -> tuple[dict, dict]:
    """Run the grid from an empty store; returns (timings, {key: compared metrics})."""
    results = CACHE / "dask_scaling" / label
    shutil.rmtree(results, ignore_errors=True)
    study = Study(cfg.replace(results_dir=str(results)), root=CACHE, verbose=False)
    _ = study.pretrained  # loaded (or pretrained once) before any clock starts
    start = time.perf_counter()
    executor = make() if make else IN_PROCESS  # the baseline: this process, one run after another
    startup = time.perf_counter() - start
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    try:
        df = study.run(CONDITIONS, progress=True, executor=executor)
    finally:
        if make:
            executor.close()
    seconds = time.perf_counter() - start
    timing = {"seconds": round(seconds, 1), "startup_s": round(startup, 1), "runs": len(df),
              "runs_per_min": round(len(df) / seconds * 60, 2),
              "load_avg_1min": [round(load_before, 1), round(os.getloadavg()[0], 1)]}
    print(f"{label}: {len(df)} runs in {seconds:.1f} s ({timing['runs_per_min']} runs/min; "
          f"start-up {startup:.1f} s; load {timing['load_avg_1min']})", flush=True)
    return timing, {r["key"]: tuple(r[m] for m in COMPARED) for r in df.to_dict("records")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fractions 0.001 and 0.01, 4 repeats (40 runs)")
    parser.add_argument("--workers", type=int, nargs="*", default=[1, 2], help="LocalCluster sizes to time")
    parser.add_argument("--threads", type=int, default=2, help="PyTorch threads of the in-process run")
    parser.add_argument("--out", default=None, help="also write the JSON result to this file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = config(args.quick)

    local, reference = timed_grid(cfg, f"in_process_{args.threads}threads")
    clusters = {}
    for n in args.workers:
        # one PyTorch thread per worker: the scaling is in processes, as on a lab cluster of 1-core workers
        timing, rows = timed_grid(cfg, f"local_cluster_{n}", lambda: make_executor(
            "local-cluster", n_workers=n, threads_per_worker=1, torch_threads=1, dashboard_address=None))
        timing["speedup_vs_in_process"] = round(local["seconds"] / timing["seconds"], 2)
        timing["rows_identical_to_in_process"] = sum(rows.get(k) == v for k, v in reference.items())
        clusters[str(n)] = timing
    result = {"benchmark": "dask_scaling", "grid": "cpu profile MNIST[0-4]->MNIST[5-9], baseline + FR",
              "quick": args.quick, "n_runs": len(reference), "cores": available_cores(),
              "machine": platform.processor() or platform.machine(), "torch": torch.__version__,
              "in_process": {**local, "torch_threads": args.threads}, "local_cluster": clusters}
    emit(result, args.out)


if __name__ == "__main__":
    main()
