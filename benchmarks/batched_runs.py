"""Batched runs on CPU: does training G small-batch runs as one network of grouped convolutions pay?

Issue 18's question, as a microbenchmark. G copies of the ``cpu`` profile's network (4 blocks × 16
channels), each with its own weights and its own B-image batches, take Adam steps (channels-last, as the
engine runs them):

* one after another: G networks, G optimizers — what the engine does, run by run;
* batched: one network whose convolutions are grouped (``groups=G``: copy g's channels are block g) and
  whose heads are one batched matrix product, one optimizer, the sum of the G copies' mean losses;
* with ``--compile``, the batched network under ``torch.compile`` too.

Speed: median seconds per step of all G copies, per batch size. Sameness: from the same initial weights and
batches, ``--check-steps`` steps both ways, then every copy's weights compared bit for bit, and their largest
difference. A batched trainer could only be adopted if it were faster *and* gave the same results; the JSON
line says both. Data: real images of ``--dataset`` (MNIST from ``$TL_STUDY_DATA``; ``digits`` for a quick
check). Threads: ``--threads`` (default 1, as each worker of the pool runs).
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from functions.engine.config import StudyConfig
from functions.engine.data import load_dataset, normalize
from functions.engine.networks import CustomCNN, new_model
from functions.engine.training import channels_last
from report import emit  # benchmarks/report.py: this script's folder is on sys.path

N_CLASSES = 5


class GroupedCopies(nn.Module):
    """G copies of a CustomCNN (one linear head, no second layer) as one network: block i of every copy is
    one grouped convolution, the heads one batched product. Input: copy g's images in channels
    ``[g·C, (g+1)·C)``; output: logits ``[B, G, classes]``."""

    def __init__(self, nets: list[CustomCNN]):
        super().__init__()
        self.g = len(nets)
        self.convs = nn.ModuleList()
        self.tails = nn.ModuleList()  # activation and pooling of each block: the same for every copy
        for i, block in enumerate(nets[0].blocks):
            conv = block.conv
            grouped = nn.Conv2d(conv.in_channels * self.g, conv.out_channels * self.g, conv.kernel_size,
                                padding=conv.padding, groups=self.g)
            with torch.no_grad():
                grouped.weight.copy_(torch.cat([n.blocks[i].conv.weight for n in nets]))
                grouped.bias.copy_(torch.cat([n.blocks[i].conv.bias for n in nets]))
            self.convs.append(grouped)
            self.tails.append(nn.Sequential(block.act, *([block.pool] if block.pool is not None else [])))
        self.head_weight = nn.Parameter(torch.stack([n.head.fc.weight.detach() for n in nets]))
        self.head_bias = nn.Parameter(torch.stack([n.head.fc.bias.detach() for n in nets]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv, tail in zip(self.convs, self.tails):
            x = tail(conv(x))
        h = x.reshape(len(x), self.g, -1)  # copy g's flattened features, in the single network's order
        return torch.einsum("bgi,goi->bgo", h, self.head_weight) + self.head_bias

    def copy_parameters(self, g: int) -> list[torch.Tensor]:
        """Copy g's parameters, in the order of its CustomCNN's ``parameters()``."""
        out = []
        for conv in self.convs:
            n = conv.out_channels // self.g
            out += [conv.weight[g * n:(g + 1) * n], conv.bias[g * n:(g + 1) * n]]
        return out + [self.head_weight[g], self.head_bias[g]]


def images(dataset: str, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` normalised images of ``dataset`` from the fine-tuning classes 5–9 (labels 0–4)."""
    raw = load_dataset(dataset)
    keep = raw.y_train >= 5
    x = normalize(raw.x_train[keep][:n], raw.mean, raw.std)
    return x, raw.y_train[keep][:n] - 5


def batches(x, y, copies: int, batch: int, steps: int, seed: int = 0):
    """Per step, per copy: a random batch (the same for both ways of training)."""
    gen = torch.Generator().manual_seed(seed)
    return [[torch.randint(len(x), (batch,), generator=gen) for _ in range(copies)] for _ in range(steps)]


def step_one_by_one(nets, opts, x, y, idx):
    for net, opt, i in zip(nets, opts, idx):
        loss = F.cross_entropy(net(x[i].contiguous(memory_format=torch.channels_last)), y[i])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def step_batched(net, opt, x, y, idx):
    xb = torch.stack([x[i] for i in idx], 1).flatten(1, 2).contiguous(memory_format=torch.channels_last)
    logits = net(xb)
    loss = sum(F.cross_entropy(logits[:, g], y[i]) for g, i in enumerate(idx))  # each copy's own mean loss
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def fresh(cfg, copies: int, lr: float):
    """G seeded networks with their optimizers, and the batched network made from the same weights."""
    nets = []
    for g in range(copies):
        torch.manual_seed(g)
        nets.append(channels_last(new_model(cfg, N_CLASSES)))
    batched = channels_last(GroupedCopies(nets))
    return (nets, [torch.optim.Adam(n.parameters(), lr=lr) for n in nets],
            batched, torch.optim.Adam(batched.parameters(), lr=lr))


def median_step(step, steps) -> float:
    """Median wall seconds of one call of ``step(idx)`` over ``steps`` (after two warm-up calls)."""
    for idx in steps[:2]:
        step(idx)
    times = []
    for idx in steps[2:]:
        t = time.perf_counter()
        step(idx)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def sameness(cfg, x, y, copies: int, batch: int, n_steps: int, lr: float) -> dict:
    """Both ways from the same weights and batches: how many copies end bit-identical, largest difference."""
    nets, opts, batched, opt = fresh(cfg, copies, lr)
    for idx in batches(x, y, copies, batch, n_steps, seed=1):
        step_one_by_one(nets, opts, x, y, idx)
        step_batched(batched, opt, x, y, idx)
    identical, worst = 0, 0.0
    for g, net in enumerate(nets):
        pairs = [(a.detach(), b.detach()) for a, b in zip(net.parameters(), batched.copy_parameters(g))]
        identical += all(torch.equal(a, b.reshape(a.shape)) for a, b in pairs)
        worst = max(worst, max(float((a - b.reshape(a.shape)).abs().max()) for a, b in pairs))
    return {"copies_bit_identical": identical, "max_abs_weight_diff": worst}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=("MNIST", "digits"), default="MNIST")
    parser.add_argument("--copies", type=int, default=16)
    parser.add_argument("--batch", type=int, nargs="+", default=[20, 64], help="images per copy per step")
    parser.add_argument("--steps", type=int, default=30, help="timed steps per measurement")
    parser.add_argument("--check-steps", type=int, default=5, help="steps of the sameness check")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile of the batched net")
    parser.add_argument("--out", default=None, help="also write the JSON result to this file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = StudyConfig.from_profile("cpu", source_dataset=args.dataset, target_dataset=args.dataset)
    x, y = images(args.dataset, 2000)
    lr = cfg.lr_fine_tune
    result = {"benchmark": "batched_runs", "dataset": args.dataset, "copies": args.copies,
              "threads": args.threads, "network": f"cpu profile {cfg.depth}x{cfg.num_channels}",
              "torch": torch.__version__, "per_batch": {}}
    for batch in args.batch:
        steps = batches(x, y, args.copies, batch, args.steps + 2)
        nets, opts, batched, opt = fresh(cfg, args.copies, lr)
        one_by_one = median_step(lambda idx: step_one_by_one(nets, opts, x, y, idx), steps)
        grouped = median_step(lambda idx: step_batched(batched, opt, x, y, idx), steps)
        row = {"one_by_one_ms": round(one_by_one * 1e3, 2), "batched_ms": round(grouped * 1e3, 2),
               "speedup": round(one_by_one / grouped, 2)}
        if args.compile:
            _, _, plain, opt_c = fresh(cfg, args.copies, lr)
            compiled = torch.compile(plain)
            row["compiled_ms"] = round(median_step(lambda idx: step_batched(compiled, opt_c, x, y, idx), steps) * 1e3, 2)
            row["compiled_speedup"] = round(one_by_one * 1e3 / row["compiled_ms"], 2)
        row.update(sameness(cfg, x, y, args.copies, batch, args.check_steps, lr))
        print(f"batch {batch}: {row}", flush=True)
        result["per_batch"][str(batch)] = row
    emit(result, args.out)


if __name__ == "__main__":
    main()
