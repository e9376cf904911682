"""Transfer conditions: how a run's model is made from a pretrained one, and every condition's registration.

A condition is a name the grid can plan: the switches of the original study (freeze, re-init, truncate:
FR, F, UR, U, FT, UT, named by :func:`condition_name` and read back by :func:`condition_flags`) and the
controls run on the same engine:

* **Yosinski et al. (2014).** ``AnB`` / ``AnB+``: blocks ``[0, k)`` from the network pretrained on A (the
  pretraining classes), frozen / fine-tuned, blocks after the cut re-initialised. ``BnB`` / ``BnB+``: the
  same from a network pretrained on B (the fine-tuning classes themselves, on B's full training split).
* **Surgical fine-tuning** (``surgical``): the whole A network with a new head; only block k (and the
  head) trains, every other block is frozen. Cut k = the tuned block; cut = number of blocks = head only.
* **What transfers** (``controls``): ``stats_FR`` / ``stats_UR`` take blocks ``[0, k)`` from the A network
  re-drawn with each layer's weight mean and std (frozen / fine-tuned), ``shuffled_FR`` from the A network
  with each layer's weights permuted (frozen): the counterparts of FR / UR without the pretrained structure.
* **Strategies**: ``head_only`` (frozen A features + new head), ``full_finetune`` (every A block
  fine-tuned + new head) and ``random_frozen`` (frozen *random* blocks + trained head: the honest lower
  bound of "features", since a trained head alone already learns something from random projections).

Torch-free at import (``config`` names its condition with :func:`condition_name`); the builders import
the networks when they run.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

from .architectures import block_count

# What each condition code stands for, in the words of the study's switches (figure labels).
CONDITION_WORDS = {
    "baseline": "from scratch",
    "FR": "freeze + reinit",
    "F": "freeze, suffix kept",
    "FT": "freeze + truncate",
    "UR": "unfrozen + reinit",
    "U": "unfrozen, suffix kept",
    "UT": "unfrozen + truncate",
}
CONDITION_ORDER = ("FR", "F", "FT", "UR", "U", "UT", "AnB", "AnB+", "BnB", "BnB+")  # in tables and figures
YOSINSKI = ("AnB", "AnB+", "BnB", "BnB+")
SURGICAL = "surgical"
STRATEGIES = ("baseline", "random_frozen", "head_only", "full_finetune")
WHAT_TRANSFERS = ("stats_FR", "stats_UR", "shuffled_FR")  # controls kept in the headline study's own store
BASELINE_FLAGS = (False, True, False)  # from scratch: nothing frozen, every block fresh, nothing removed
_SWITCH_NAME = re.compile(r"[FU][RT]?")


# ----------------------------------------------------------------------------- name ↔ flags
def condition_name(freeze: bool, reinit: bool, truncate: bool, cut: int | None = None) -> str:
    """F/U (frozen or not) + T (truncated) or R (re-initialised); ``baseline`` for cut -1."""
    if cut == -1:
        return "baseline"
    prefix = "F" if freeze else "U"
    if truncate:
        return prefix + "T"
    return prefix + ("R" if reinit else "")


def condition_flags(name: Any) -> tuple[bool, bool, bool] | None:
    """(freeze, reinit, truncate) a condition name stands for; None for controls and unknown names."""
    if name == "baseline":
        return BASELINE_FLAGS
    if isinstance(name, str) and _SWITCH_NAME.fullmatch(name):
        return name[0] == "F", name.endswith("R"), name.endswith("T")
    return None


def arm_label(cut: int) -> str:
    """The arm of a cut as every table and figure names it: ``baseline`` (cut −1) or ``cut k``."""
    return "baseline" if int(cut) == -1 else f"cut {int(cut)}"


def arm_cut(arm) -> int:
    """The cut an arm label names (:func:`arm_label` read back): ``baseline`` → −1, ``cut 3`` → 3."""
    return -1 if arm == "baseline" else int(str(arm).split()[-1])


def condition_label(condition: str) -> str:
    """``FR`` → ``FR (freeze + reinit)``; a control keeps its name."""
    words = CONDITION_WORDS.get(condition)
    return f"{condition} ({words})" if words else str(condition)


def ordered_conditions(conditions) -> list[str]:
    """Conditions in the study's order (FR, F, FT, UR, U, UT, AnB … then by name), baseline last."""
    rank = {name: i for i, name in enumerate(CONDITION_ORDER)}
    return sorted(set(conditions), key=lambda c: (c == "baseline", rank.get(c, len(rank)), str(c)))


# ----------------------------------------------------------------------------- conditions and runs
@dataclass(frozen=True)
class RunSpec:
    """One fine-tuning run of a grid."""

    condition: str  # "baseline" or a key of CONDITIONS
    fraction: float
    cut: int  # -1 for the baseline
    repeat: int

    @property
    def key(self) -> str:
        return f"{self.condition}|{self.fraction:g}|{self.cut}|{self.repeat}"


@dataclass(frozen=True)
class Condition:
    """How a run's model is made from a pretrained one at cut k.

    ``source``: which network the kept blocks come from, a name in :data:`SOURCES`: ``"A"`` (pretrained on
    the pretraining classes), ``"B"`` (pretrained on the fine-tuning classes themselves: the self-transfer
    control), one registered with :func:`register_source`, or any name a custom ``builder`` understands.
    ``builder(study, spec) -> model`` replaces the standard cut; ``cuts`` (``cfg -> list``) replaces the
    grid's cut points; ``cacheable`` says whether blocks ``[0, k)`` are frozen copies of the source model,
    so that their outputs may be served from the prefix cache.
    """

    name: str
    freeze: bool = True
    reinit: bool = True
    truncate: bool = False
    source: str = "A"
    builder: Callable[[Any, RunSpec], Any] | None = None
    cuts: Callable[[Any], list[int]] | None = None
    cacheable: bool | None = None
    description: str = ""

    @property
    def uses_cache(self) -> bool:
        return self.freeze if self.cacheable is None else self.cacheable

    @property
    def cut0_is_baseline(self) -> bool:
        """Cut 0 with re-init of a standard cut is the from-scratch baseline (same fresh weights, by CRN).

        Truncation at cut 0 is not: it removes every block and trains a head on raw pixels, its own arm.
        """
        return self.builder is None and self.reinit and not self.truncate


CONDITIONS: dict[str, Condition] = {}


def register_condition(condition: Condition) -> Condition:
    """Make a condition available to every grid by name."""
    CONDITIONS[condition.name] = condition
    return condition


# Transfer sources: name → (study → network), built once per study. "A" and "B" are registered below.
SOURCES: dict[str, Callable[[Any], Any]] = {}
BUILT_IN_SOURCES = ("A", "B")


def register_source(name: str, make: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Make ``Condition(source=name)`` transfer from (and cache the prefix of) ``make(study)``."""
    if name in BUILT_IN_SOURCES:
        raise ValueError(f"source name {name!r} is built in; choose another name")
    SOURCES[name] = make
    return make


# ----------------------------------------------------------------------------- cut points and builders
def transfer_cuts(cfg) -> list[int]:
    """Cuts 0..blocks (the config's ``cuts`` when given); blocks, not conv layers, for a ResNet."""
    n = block_count(cfg)
    if cfg.cuts is None:
        return list(range(n + 1))
    return sorted(k for k in cfg.cuts if 0 <= k <= n)


def head_cut(cfg) -> list[int]:
    """The single cut after the last block (every block transferred)."""
    return [block_count(cfg)]


def surgical_model(study, spec: RunSpec):
    """The whole pretrained A network with a new seeded head; only block ``spec.cut`` stays trainable.

    ``spec.cut == depth`` trains the head alone. Blocks ``[0, k)`` are frozen copies of A, so the prefix
    cache (built from A) serves them; blocks after k are frozen too and simply stay out of the optimizer.
    """
    from .networks import cut

    source = study.source_model("A")
    model = cut(source, source.depth, len(study.cfg.fine_tune_classes), freeze=True, reinit=False,
                reinit_both_dense=study.cfg.reinit_both_dense, seed=study.init_seed(spec))
    if spec.cut < model.depth:
        model.blocks[spec.cut].requires_grad_(True)
    return model


def pretrained_on_source(study):
    """Source A: the network pretrained on the source dataset's pretraining classes (loaded when saved)."""
    return study.pretrain_on("A", study.cfg, lambda: study.source)


def pretrained_on_target(study):
    """Source B: the same network pretrained on the fine-tuning classes themselves (the training split of
    the target): the self-transfer control of Yosinski et al."""
    cfg = study.cfg
    cfg_b = cfg.replace(source_dataset=cfg.target_dataset, pre_train_classes=list(cfg.fine_tune_classes))
    return study.pretrain_on("B", cfg_b, lambda: study.target)


def random_network(study):
    """One randomly initialised network per study (seeded): the source of ``random_frozen``."""
    import torch

    from .data import stable_seed
    from .networks import new_model

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(stable_seed("random-features", study.cfg.seed))
        return new_model(study.cfg, len(study.cfg.pre_train_classes))


# ----------------------------------------------------------------------------- registrations
for _name, _text in (
        ("FR", "transferred blocks frozen, later blocks re-initialised"),
        ("F", "transferred blocks frozen, later blocks keep pretrained weights"),
        ("UR", "transferred blocks fine-tuned, later blocks re-initialised"),
        ("U", "every block fine-tuned from pretrained weights"),
        ("FT", "transferred blocks frozen, later blocks removed (truncation)"),
        ("UT", "transferred blocks fine-tuned, later blocks removed")):
    register_condition(Condition(_name, *condition_flags(_name), description=_text))

SOURCES.update(A=pretrained_on_source, B=pretrained_on_target)
register_source("random", random_network)

for _name, _freeze, _source, _text in (
        ("AnB", True, "A", "blocks [0,k) from A frozen, later blocks re-initialised (Yosinski AnB)"),
        ("AnB+", False, "A", "blocks [0,k) from A fine-tuned, later blocks re-initialised (AnB+)"),
        ("BnB", True, "B", "blocks [0,k) from a network trained on B itself, frozen (self-transfer BnB)"),
        ("BnB+", False, "B", "blocks [0,k) from the B network, fine-tuned (BnB+)")):
    register_condition(Condition(_name, freeze=_freeze, reinit=True, source=_source, cuts=transfer_cuts,
                                 description=_text))

register_condition(Condition(
    SURGICAL, freeze=True, reinit=False, source="A", builder=surgical_model, cuts=transfer_cuts,
    cacheable=True, description="whole A network, only block k (and the new head) trained; k=depth: head"))
register_condition(Condition(
    "head_only", freeze=True, reinit=False, source="A", cuts=head_cut,
    description="every A block frozen, new head trained (linear probe)"))
register_condition(Condition(
    "full_finetune", freeze=False, reinit=False, source="A", cuts=head_cut,
    description="every A block fine-tuned with a new head"))
register_condition(Condition(
    "random_frozen", freeze=True, reinit=False, source="random", cuts=head_cut,
    description="frozen randomly initialised blocks, trained head: the lower bound"))


def _statistics_matched_source(study):
    from .controls import statistics_matched_source  # torch only when a run needs it

    return statistics_matched_source(study)


def _shuffled_source(study):
    from .controls import shuffled_source

    return shuffled_source(study)


register_source("stats_matched", _statistics_matched_source)
register_source("shuffled", _shuffled_source)
for _name, _freeze, _source, _text in (
        ("stats_FR", True, "stats_matched", "blocks [0,k) re-drawn with each pretrained layer's weight mean "
                                            "and std, frozen; later blocks re-initialised (scale, no structure)"),
        ("stats_UR", False, "stats_matched", "blocks [0,k) re-drawn with each pretrained layer's weight mean "
                                             "and std, fine-tuned; later blocks re-initialised"),
        ("shuffled_FR", True, "shuffled", "blocks [0,k) with each pretrained layer's weights permuted "
                                          "(same values, no structure), frozen; later blocks re-initialised")):
    register_condition(Condition(_name, freeze=_freeze, reinit=True, source=_source, description=_text))


# ----------------------------------------------------------------------------- one arm, one place
def arm_signature(condition: str, cut: int, n_blocks: int) -> tuple:
    """What a run of ``condition`` at ``cut`` trains, block by block, from the registry alone: per block
    ``("fresh",)``, ``(source, "frozen")``, ``(source, "trained")`` or ``("removed",)``; the head is always
    new. Two arms with the same signature are the same network and training (e.g. FR, F, FT, AnB and
    ``head_only`` at the last cut), so their runs are one arm with several names.
    """
    if condition == "baseline" or cut == -1:
        return tuple(("fresh",) for _ in range(n_blocks))
    cond = CONDITIONS[condition]
    if cond.builder is surgical_model:
        return tuple((cond.source, "trained" if j == cut else "frozen") for j in range(n_blocks))
    if cond.builder is not None:  # a custom builder: only itself is known to be itself
        return (("custom", condition, cut),)
    kept = (cond.source, "frozen" if cond.freeze else "trained")
    after = ("removed",) if cond.truncate else ("fresh",) if cond.reinit else (cond.source, "trained")
    blocks = tuple(kept if j < cut else after for j in range(n_blocks))
    return tuple(b for b in blocks if b != ("removed",))


def equivalent_arms(arms: list[tuple[str, int]], n_blocks: int) -> list[list[tuple[str, int]]]:
    """``arms`` ((condition, cut) pairs) grouped by :func:`arm_signature`, each group in the given order."""
    groups: dict[tuple, list[tuple[str, int]]] = {}
    for condition, cut in arms:
        groups.setdefault(arm_signature(condition, cut, n_blocks), []).append((condition, cut))
    return list(groups.values())
