"""Grid speed: the engine vs a naive textbook path vs the protocol's FLOP floor; and in-process vs pooled.

``--mode engine`` (the default; issue #2): MNIST, paper-size model (6 blocks × 64 channels, 3×3, avg-pool
every 2), classes 0–4 → 5–9, one shared pretrained model, FR at cuts 0, 2, 4, 6 (cut 0 = the from-scratch
baseline), fractions 0.001 and 0.01, 2 repeats, the original protocol (Adam 1e-3, batch 4096, ≤40 epochs,
patience 6). Both paths train the same subsets from the same initial weights.

* naive: torchvision Dataset + DataLoader per item, subsets found by iterating the dataset, training
  and validation accuracy every epoch, no caching — the way the original study's code ran.
* ours: ``functions.engine.study.Study`` (in-memory tensors, validation-only epochs, prefix cache).
* floor: FLOPs the protocol cannot avoid (training steps at 3× forward, one validation pass per epoch,
  one test pass, each frozen prefix once) over the fp32 matmul rate measured here.

Prints progress, a per-cut table and a final JSON line. ``--quick`` runs cuts 0 and 4, one repeat.

``--mode pool`` (issue #18): runs per minute of the fair ``cpu`` grid — the cpu profile (realistic protocol,
tuned learning rate), baseline + FR at cuts 1–4, fractions 0.1 % and 1 %, 16 repeats: 160 runs — trained
in one process with ``--threads`` PyTorch threads (what a notebook did), then on the default pool of one
single-threaded worker per core (what ``Study.run`` now does), each from an empty store with the shipped
pretrained model; the pool's time includes starting its workers. Prints both rates, their ratio and how
many rows came out identical (threads change the order of float sums, so ``--threads 1`` is the
bit-for-bit check). Run it on a quiet machine. Data: ``$TL_STUDY_DATA``; ``--dataset digits`` is a quick
functional check on scikit-learn's digits (fractions 5 % and 20 %, a 50–100 step budget), not a timing.
"""
from __future__ import annotations

import argparse
import copy
import os
import shutil
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from functions.engine.conditions import RunSpec
from functions.engine.config import StudyConfig
from functions.engine.data import balanced_subset, stable_seed, subset_seed, stratified_cut
from functions.engine.networks import CustomCNN, cut, forward_flops, new_model
from functions.engine.pool import LocalPool, available_cores
from functions.engine.study import IN_PROCESS, Study, group_for_cache
from functions.engine.training import Tensors, fit
from report import emit  # benchmarks/report.py: this script's folder is on sys.path

CACHE = Path(__file__).resolve().parent / "_cache"
REPO = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- FLOPs
def matmul_gflops(n: int = 2048, repeats: int = 10) -> float:
    """Sustained fp32 matmul rate of this machine (GFLOP/s), best of a few timed rounds."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best / 1e9


def run_floor_flops(blocks: list[float], head: float, k: int, n_train: int, n_val: int, n_test: int,
                    epochs: int) -> float:
    """Unavoidable FLOPs of one run at cut k (suffix only: the prefix is counted once per grid)."""
    suffix = sum(blocks[k:]) + head
    return epochs * (3 * suffix * n_train + suffix * n_val) + suffix * n_test


# ----------------------------------------------------------------------------- shared setup
def config(quick: bool) -> StudyConfig:
    return StudyConfig.from_profile(
        "paper", percentages=[0.001, 0.01], repeats=1 if quick else 2, cuts=[0, 4] if quick else [0, 2, 4, 6],
        results_dir=str(CACHE / "results"), pretrained_dir=str(CACHE / "pretrained_models"))


def shared_pretrained(cfg: StudyConfig, study: Study) -> CustomCNN:
    """One pretrained model for both paths: a short pretraining run (its quality does not matter for
    speed), saved under benchmarks/_cache so reruns skip it."""
    path = CACHE / "pretrained_6x64.pth"
    model = new_model(cfg, len(cfg.pre_train_classes))
    if path.exists():
        model.load_state_dict(torch.load(path, weights_only=True))
        return model.eval()
    torch.manual_seed(0)
    src = study.source
    idx = balanced_subset(src.y_train, 0.2, seed=0)
    print(f"pretraining the shared 6×64 model on {len(idx)} images (2 epochs)…", flush=True)
    fit(model, Tensors(src.x_train[idx], src.y_train[idx], src.x_val, src.y_val, src.x_test, src.y_test),
        lr=1e-3, max_epochs=2, patience=2, batch_size=256, seed=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    return model.eval()


# ----------------------------------------------------------------------------- the naive path
def naive_run(cfg: StudyConfig, pretrained: CustomCNN, spec: RunSpec, init_seed: int, root: str) -> dict:
    """One fine-tuning run written the textbook way: per-item Dataset/DataLoader, full evals per epoch."""
    from torch.utils.data import DataLoader, Subset
    from torchvision import datasets, transforms

    t0 = time.perf_counter()
    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
    train_ds = datasets.MNIST(root, train=True, transform=tf, download=False)
    test_ds = datasets.MNIST(root, train=False, transform=tf, download=False)
    classes = cfg.fine_tune_classes
    relabel = {c: i for i, c in enumerate(classes)}
    # subsets found by iterating the dataset item by item (labels through the transform pipeline)
    class_idx = [i for i in range(len(train_ds)) if train_ds[i][1] in relabel]
    y = torch.tensor([relabel[train_ds[i][1]] for i in class_idx])
    val_pos = stratified_cut(y, lambda n: int(round(n * cfg.val_split)), stable_seed("val", cfg.generate_dataset_seed))
    is_val = torch.zeros(len(y), dtype=torch.bool)
    is_val[val_pos] = True
    train_pos = torch.nonzero(~is_val).flatten()
    sub = balanced_subset(y[train_pos], spec.fraction, subset_seed(cfg.generate_dataset_seed, spec.fraction, spec.repeat))
    pick = lambda positions: [class_idx[p] for p in positions.tolist()]  # noqa: E731
    test_idx = [i for i in range(len(test_ds)) if test_ds[i][1] in relabel]

    def collate(batch):
        xs = torch.stack([b[0] for b in batch])
        ys = torch.tensor([relabel[b[1]] for b in batch])
        return xs, ys

    loader = lambda ds, idx, shuffle: DataLoader(Subset(ds, idx), batch_size=cfg.batch_size,  # noqa: E731
                                                 shuffle=shuffle, collate_fn=collate)
    train_loader = loader(train_ds, pick(train_pos[sub]), True)
    val_loader = loader(train_ds, pick(val_pos), False)
    test_loader = loader(test_ds, test_idx, False)
    model = cut(pretrained, spec.cut, len(classes), True, True, False, True, seed=init_seed)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.lr_fine_tune)

    def accuracy(dl):
        model.eval()
        correct = total = 0
        with torch.no_grad():
            for xb, yb in dl:
                correct += (model(xb).argmax(1) == yb).sum().item()
                total += len(yb)
        return correct / total

    best, best_state, stale, epochs = -1.0, copy.deepcopy(model.state_dict()), 0, 0
    torch.manual_seed(init_seed)
    for _ in range(cfg.num_train):
        epochs += 1
        model.train()
        for xb, yb in train_loader:
            loss = F.nll_loss(F.log_softmax(model(xb), 1), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
        accuracy(train_loader)  # the original evaluated training accuracy every epoch
        val = accuracy(val_loader)
        if val > best:
            best, best_state, stale = val, copy.deepcopy(model.state_dict()), 0
        else:
            stale += 1
            if stale >= cfg.early_stop_patience:
                break
    model.load_state_dict(best_state)
    return {"cut": spec.cut, "fraction": spec.fraction, "repeat": spec.repeat, "train_acc": accuracy(train_loader),
            "test_acc": accuracy(test_loader), "epochs": epochs, "seconds": time.perf_counter() - t0}


# ----------------------------------------------------------------------------- in-process vs pooled
COMPARED = ("train_acc", "val_acc", "test_acc", "epochs", "lr")


def fair_config(dataset: str, repeats: int | None) -> StudyConfig:
    """The fair cpu grid (baseline + FR at every cut of the 4-block network, 0.1 % and 1 %), or its digits
    stand-in for a functional check (larger fractions, so that each class keeps two labelled images)."""
    if dataset == "digits":
        overrides = dict(source_dataset="digits", target_dataset="digits", percentages=[0.05, 0.2],
                         min_steps=50, max_steps=100, pretrained_dir=str(CACHE / "pretrained_models"))
    else:  # the shipped pretrained model of the cpu grid: nothing to pretrain
        overrides = dict(percentages=[0.001, 0.01], pretrained_dir=str(REPO / "MNIST" / "pretrained_models"))
    if repeats:
        overrides["repeats"] = repeats
    return StudyConfig.from_profile("cpu", **overrides, results_dir=str(CACHE / "pool_speed" / "unused"))


def timed_grid(cfg: StudyConfig, label: str, executor, threads: int) -> tuple[dict, dict]:
    """The grid from an empty store on ``executor``; (timing, {key: compared values})."""
    results = CACHE / "pool_speed" / label
    shutil.rmtree(results, ignore_errors=True)
    study = Study(cfg.replace(results_dir=str(results)), root=CACHE, verbose=False)
    _ = study.pretrained, study.target  # loaded before the clock starts (a notebook has them already)
    torch.set_num_threads(threads)
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    df = study.run(("baseline", "FR"), progress=True, executor=executor)
    seconds = time.perf_counter() - start
    timing = {"seconds": round(seconds, 1), "runs": len(df), "runs_per_min": round(len(df) / seconds * 60, 2),
              "load_avg_1min": [round(load_before, 1), round(os.getloadavg()[0], 1)]}
    print(f"{label}: {len(df)} runs in {seconds:.1f} s = {timing['runs_per_min']} runs/min "
          f"(load {timing['load_avg_1min']})", flush=True)
    return timing, {r["key"]: tuple(r[m] for m in COMPARED) for r in df.to_dict("records")}


def pool_speed(args) -> dict:
    """Runs per minute of the fair cpu grid in one process and on the default worker pool."""
    cfg = fair_config(args.dataset, args.repeats)
    cores = available_cores()
    here, here_rows = timed_grid(cfg, f"in_process_{args.threads}threads", IN_PROCESS, args.threads)
    with LocalPool(cores, torch_threads=1) as pool:
        pooled, pooled_rows = timed_grid(cfg, f"pool_{cores}workers", pool, args.threads)
    diffs = [abs(here_rows[k][2] - v[2]) for k, v in pooled_rows.items() if k in here_rows]
    ratio = round(pooled["runs_per_min"] / here["runs_per_min"], 2)
    print(f"pooled / in-process: {ratio}× the runs per minute on {cores} cores", flush=True)
    return {"benchmark": "pool_speed", "dataset": args.dataset, "grid": "cpu profile, baseline + FR, cuts 1-4",
            "fractions": cfg.percentages, "repeats": cfg.repeats, "cores": cores, "torch": torch.__version__,
            "in_process": {**here, "torch_threads": args.threads},
            "pooled": {**pooled, "workers": cores, "torch_threads": 1}, "ratio": ratio,
            "rows_identical": sum(pooled_rows.get(k) == v for k, v in here_rows.items()),
            "max_abs_test_acc_diff": round(max(diffs), 4) if diffs else None}


# ----------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=("engine", "pool"), default="engine",
                        help="engine: ours vs naive vs floor; pool: in-process vs pooled runs/min")
    parser.add_argument("--quick", action="store_true", help="engine mode: cuts 0 and 4, one repeat")
    parser.add_argument("--threads", type=int, default=2, help="PyTorch threads of the in-process path")
    parser.add_argument("--skip-naive", action="store_true", help="engine mode: engine and floor only")
    parser.add_argument("--dataset", choices=("MNIST", "digits"), default="MNIST",
                        help="pool mode: digits is a quick functional check, not a timing")
    parser.add_argument("--repeats", type=int, default=None, help="pool mode: repeats per fraction "
                                                                  "(default: the cpu profile's 16)")
    parser.add_argument("--out", default=None, help="also write the JSON result to this file")
    args = parser.parse_args()
    if args.mode == "pool":
        emit(pool_speed(args), args.out)
        return
    engine_speed(args)


def engine_speed(args) -> None:
    """The engine vs the naive path vs the FLOP floor (``--mode engine``)."""
    torch.set_num_threads(args.threads)

    cfg = config(args.quick)
    gflops = matmul_gflops()
    print(f"fp32 matmul: {gflops:.1f} GFLOP/s on {args.threads} threads", flush=True)
    study = Study(cfg, verbose=False)
    study.use_source("A", shared_pretrained(cfg, study))
    specs = [s for s in study.plan(("baseline", "FR"))]
    init_seed = {(s.fraction, s.repeat): study.init_seed(s) for s in specs}
    # the baseline is the FR grid's cut 0: train it as "cut 0" in both paths
    specs = [RunSpec("FR", s.fraction, 0, s.repeat) if s.condition == "baseline" else s for s in specs]

    # ours: the engine, timing each run including its share of the prefix cache work
    ours_rows, per_cut_s = [], {}
    t_ours = time.perf_counter()
    baseline_specs = [RunSpec("baseline", s.fraction, -1, s.repeat) for s in specs if s.cut == 0]
    for group in group_for_cache(baseline_specs) + group_for_cache([s for s in specs if s.cut > 0]):
        t = time.perf_counter()
        for spec, row in study.iter_group(group):
            now = time.perf_counter()
            k = max(spec.cut, 0)
            per_cut_s[k] = per_cut_s.get(k, 0.0) + now - t
            t = now
            ours_rows.append({**row, "cut": k})
    ours_s = time.perf_counter() - t_ours
    print(f"ours: {len(ours_rows)} runs in {ours_s:.1f} s", flush=True)

    # floor from the epochs our runs took
    *blocks, head = forward_flops(study.pretrained)  # per sample: every block, then the head
    tgt = study.target
    n_val, n_test = len(tgt.y_val), len(tgt.y_test)
    union = len(torch.unique(torch.cat([study.subset(s.fraction, s.repeat) for s in specs])))
    max_cut = max(s.cut for s in specs)
    prefix_flops = sum(blocks[:max_cut]) * (union + n_val + n_test)
    run_flops = [run_floor_flops(blocks, head, r["cut"], r["n_train"], n_val, n_test, r["epochs"]) for r in ours_rows]
    floor_s = (sum(run_flops) + prefix_flops) / (gflops * 1e9)

    naive_rows, naive_s = [], float("nan")
    if not args.skip_naive:
        t_naive = time.perf_counter()
        for i, spec in enumerate(specs):
            row = naive_run(cfg, study.pretrained, spec, init_seed[(spec.fraction, spec.repeat)],
                            str(cfg.resolved_data_root()))
            naive_rows.append(row)
            print(f"naive {i + 1}/{len(specs)}: cut {spec.cut} f={spec.fraction} r={spec.repeat} "
                  f"{row['seconds']:.1f} s ({row['epochs']} epochs, test {row['test_acc']:.3f})", flush=True)
        naive_s = time.perf_counter() - t_naive

    def medians(rows):
        out = {}
        for r in rows:
            out.setdefault((r["cut"], r["fraction"]), []).append(r["test_acc"])
        return {k: statistics.median(v) for k, v in out.items()}

    m_ours, m_naive = medians(ours_rows), medians(naive_rows)
    diffs = [abs(m_ours[k] - m_naive[k]) for k in m_naive]
    total = sum(blocks) + head
    per_cut = {}
    for k in sorted(per_cut_s):
        epochs = [r["epochs"] for r in ours_rows if r["cut"] == k]
        per_cut[str(k)] = {"ours_s": round(per_cut_s[k], 2),
                           "suffix_flops_share": round((sum(blocks[k:]) + head) / total, 4),
                           "mean_epochs": round(statistics.mean(epochs), 1),
                           "naive_s": round(sum(r["seconds"] for r in naive_rows if r["cut"] == k), 2) if naive_rows else None}
    print("\ncut  ours_s  naive_s  suffix_share  epochs")
    for k, v in per_cut.items():
        print(f"{k:>3}  {v['ours_s']:6.1f}  {v['naive_s'] if v['naive_s'] is not None else float('nan'):7.1f}"
              f"  {v['suffix_flops_share']:12.3f}  {v['mean_epochs']:6.1f}")
    result = {"naive_s": round(naive_s, 2), "ours_s": round(ours_s, 2),
              "ratio": round(naive_s / ours_s, 2) if naive_rows else None,
              "floor_s": round(floor_s, 2), "ours_over_floor": round(ours_s / floor_s, 2),
              "max_abs_median_diff": round(max(diffs), 4) if diffs else None,
              "per_cut": per_cut, "matmul_gflops": round(gflops, 1), "runs": len(specs),
              "quick": args.quick, "threads": args.threads, "device": "cpu"}
    emit(result, args.out)


if __name__ == "__main__":
    main()
