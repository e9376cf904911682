"""Controls as grid conditions on digits: Yosinski AnB/BnB(+), surgical fine-tuning, strategies, histories.

The key test: after a run, every parameter that is trainable has moved and every frozen one has not —
which fails if freezing only set requires_grad while the optimizer saw something else (or the reverse:
the coursework bug where only the head was handed to the optimizer and the backbone never trained).
"""
import pandas as pd
import pytest
import torch

from functions.analysis import transfer_conditions as controls
from functions.engine import conditions
from functions.engine.cache import PrefixCache
from functions.engine.conditions import CONDITIONS, RunSpec
from functions.engine.study import Study


@pytest.fixture(scope="module")
def study(tmp_path_factory, digits_config):
    tmp = tmp_path_factory.mktemp("controls")
    s = Study(digits_config(tmp, num_train=4, percentages=[0.2, 0.5]), root=tmp, verbose=False, record_history=True)
    _ = s.pretrained, s.pretrained_b
    return s


def same(a, b):
    return all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def moved_and_frozen(before: torch.nn.Module, after: torch.nn.Module) -> tuple[list[str], list[str]]:
    """(trainable parameters that did not move, frozen parameters that did)."""
    start = dict(before.named_parameters())
    stuck, drifted = [], []
    for name, p in after.named_parameters():
        changed = not torch.equal(p.detach().cpu(), start[name].detach().cpu())
        if p.requires_grad and not changed:
            stuck.append(name)
        if not p.requires_grad and changed:
            drifted.append(name)
    return stuck, drifted


def test_conditions_are_registered_with_their_flags():
    expected = {"AnB": (True, True, "A"), "AnB+": (False, True, "A"), "BnB": (True, True, "B"),
                "BnB+": (False, True, "B"), "head_only": (True, False, "A"),
                "full_finetune": (False, False, "A"), "random_frozen": (True, False, "random")}
    for name, (freeze, reinit, source) in expected.items():
        c = CONDITIONS[name]
        assert (c.freeze, c.reinit, c.source) == (freeze, reinit, source), name
    assert CONDITIONS["surgical"].builder is conditions.surgical_model and CONDITIONS["surgical"].uses_cache


def test_plan_cut_points(study):
    specs = study.plan(("baseline", "AnB", "BnB+", "surgical", "head_only", "full_finetune", "random_frozen"))
    cuts = {name: sorted({s.cut for s in specs if s.condition == name}) for name in
            ("baseline", "AnB", "BnB+", "surgical", "head_only", "full_finetune", "random_frozen")}
    assert cuts == {"baseline": [-1], "AnB": [1, 2, 3], "BnB+": [1, 2, 3], "surgical": [0, 1, 2, 3],
                    "head_only": [3], "full_finetune": [3], "random_frozen": [3]}
    assert len(specs) == 4 * (1 + 3 + 3 + 4 + 1 + 1 + 1)  # 2 fractions × 2 repeats


def test_bnb_transfers_from_the_network_trained_on_b(study):
    a_net, b_net = study.pretrained, study.pretrained_b
    assert not same(a_net.blocks[0], b_net.blocks[0])
    anb, bnb = study.build_model(RunSpec("AnB", 0.2, 2, 0)), study.build_model(RunSpec("BnB", 0.2, 2, 0))
    assert all(same(anb.blocks[i], a_net.blocks[i]) and same(bnb.blocks[i], b_net.blocks[i]) for i in (0, 1))
    # the re-initialised block and the new head start from the same seed in both: a paired comparison
    assert same(anb.blocks[2], bnb.blocks[2]) and same(anb.head, bnb.head)
    assert not same(bnb.blocks[2], b_net.blocks[2])
    # B was trained on the fine-tuning classes: its own head already solves them
    assert study.pretrain_info_b["test_acc"] > 0.5


def test_surgical_model_trains_only_block_k_and_head(study):
    for k in range(4):
        m = study.build_model(RunSpec("surgical", 0.2, k, 0))
        trainable = [any(p.requires_grad for p in b.parameters()) for b in m.blocks]
        assert trainable == [i == k for i in range(3)], k
        assert all(p.requires_grad for p in m.head.parameters())
        assert all(same(m.blocks[i], study.pretrained.blocks[i]) for i in range(3))


def test_random_frozen_is_one_seeded_random_network(study):
    a = study.build_model(RunSpec("random_frozen", 0.2, 3, 0))
    b = study.build_model(RunSpec("random_frozen", 0.5, 3, 1))
    assert same(a.blocks, b.blocks) and not same(a.head, b.head)
    assert not same(a.blocks, study.pretrained.blocks)
    assert not any(p.requires_grad for p in a.blocks.parameters())


@pytest.mark.parametrize("name,k", [("AnB", 2), ("AnB+", 2), ("BnB", 1), ("BnB+", 3), ("surgical", 0),
                                    ("surgical", 1), ("surgical", 3), ("head_only", 3),
                                    ("full_finetune", 3), ("random_frozen", 3), ("baseline", -1)])
def test_trainable_weights_move_and_frozen_weights_do_not(study, name, k):
    spec = RunSpec(name, 0.5, k, 0)
    before = study.build_model(spec)
    runs = [study.train(spec)]  # pixels in, the whole model trains
    cond = CONDITIONS.get(name)
    if cond is not None and cond.uses_cache and k > 0:  # the grid's path: frozen prefix served from cache
        cache = PrefixCache(study.cache_source(cond), study.target, study.subset(0.5, 0), study.device, 1e9)
        cache.advance_to(k)
        runs.append(study.train(spec, cache))
    for trained, row in runs:
        stuck, drifted = moved_and_frozen(before, trained)
        assert not stuck, f"{name} cut {k}: trainable but unchanged: {stuck}"
        assert not drifted, f"{name} cut {k}: frozen but changed: {drifted}"
        assert row["condition"] == name and 0 <= row["test_acc"] <= 1


ALL_LAYERS = ("blocks.0.", "blocks.1.", "blocks.2.", "head.")


@pytest.mark.parametrize("name, k, trained", [
    ("baseline", -1, ALL_LAYERS), ("full_finetune", 3, ALL_LAYERS), ("head_only", 3, ("head.",)),
    ("random_frozen", 3, ("head.",)), ("surgical", 1, ("blocks.1.", "head.")), ("AnB", 2, ("blocks.2.", "head.")),
    ("BnB+", 1, ALL_LAYERS)])
def test_the_optimizer_gets_exactly_the_layers_the_condition_trains(study, monkeypatch, name, k, trained):
    """The coursework bug (requires_grad says trainable, but only the head reaches the optimizer), checked
    on the real training path: the parameters handed to Adam, by name, are those the condition trains."""
    handed = []

    class RecordingAdam(torch.optim.Adam):
        def __init__(self, params, **kwargs):
            params = list(params)
            handed.extend(params)
            super().__init__(params, **kwargs)

    monkeypatch.setattr(torch.optim, "Adam", RecordingAdam)
    model, _ = study.train(RunSpec(name, 0.2, k, 0))
    names = [n for n, p in model.named_parameters() if any(p is q for q in handed)]
    assert len(names) == len(handed)  # nothing but the model's own parameters
    assert set(names) == {n for n, _ in model.named_parameters() if n.startswith(trained)}


def test_surgical_cached_matches_uncached(study):
    for k in (1, 2):
        spec = RunSpec("surgical", 0.5, k, 1)
        (_, cached), = list(study.iter_group([spec]))
        plain = study.run_one(spec, cache=None)
        assert cached["test_acc"] == pytest.approx(plain["test_acc"], abs=0.02)


def test_histories_are_recorded_per_epoch(study):
    spec = RunSpec("head_only", 0.2, 3, 1)
    row = study.run_one(spec)
    h = row["history"]
    assert len(h["train_loss"]) == len(h["val_loss"]) == len(h["val_acc"]) == row["epochs"]
    curves = controls.histories(pd.DataFrame([row]))
    assert list(curves["epoch"]) == list(range(1, row["epochs"] + 1))
    assert curves["val_acc"].max() == pytest.approx(row["val_acc"])


# ----------------------------------------------------------------------------- tables on known frames
def _frame(effects: dict[tuple[str, int], float], base: float = 0.5, repeats: int = 6) -> pd.DataFrame:
    rows = []
    for r in range(repeats):
        noise = 0.01 * r
        rows.append({"study": "s", "condition": "baseline", "cut": -1, "fraction": 0.1, "repeat": r,
                     "test_acc": base + noise})
        for (name, k), delta in effects.items():
            rows.append({"study": "s", "condition": name, "cut": k, "fraction": 0.1, "repeat": r,
                         "test_acc": base + noise + delta})
    return pd.DataFrame(rows)


def test_accuracy_by_cut_puts_the_baseline_at_cut_zero():
    df = _frame({("AnB", 1): 0.1, ("BnB", 1): -0.2})
    table = controls.accuracy_by_cut(df, ("AnB", "BnB"), n_boot=200)
    got = table.set_index(["condition", "cut"])["median"]
    assert got[("baseline", -1)] == pytest.approx(0.525)
    assert got[("AnB", 0)] == got[("BnB", 0)] == got[("baseline", -1)]
    assert got[("AnB", 1)] == pytest.approx(0.625) and got[("BnB", 1)] == pytest.approx(0.325)


def test_effects_vs_baseline_are_paired_differences():
    df = _frame({("AnB", 1): 0.1, ("AnB", 2): 0.0, ("BnB+", 1): -0.05})
    eff = controls.effects_vs_baseline(df, ("AnB", "BnB+"), n_boot=200).set_index(["condition", "cut"])
    assert eff.loc[("AnB", 1), "median_diff"] == pytest.approx(0.1)
    assert eff.loc[("AnB", 2), "median_diff"] == pytest.approx(0.0)
    assert eff.loc[("BnB+", 1), "median_diff"] == pytest.approx(-0.05)
    assert eff.loc[("AnB", 1), "n_pairs"] == 6


def test_surgical_summary_finds_the_best_block():
    df = _frame({("surgical", 0): 0.02, ("surgical", 1): 0.2, ("surgical", 2): 0.0}, repeats=8)
    df = df[df["condition"] == "surgical"]
    summary = controls.surgical_summary(df)
    assert list(summary["tuned"]) == ["block 0", "block 1", "head only"]
    assert summary.set_index("cut").loc[1, "gain_vs_head"] == pytest.approx(0.2)
    best = controls.best_blocks(summary)
    assert best.loc[0, "best"] == "block 1" and best.loc[0, "not_significantly_worse"] == "block 1"


def test_missing_columns_are_a_clear_error():
    with pytest.raises(ValueError, match="missing columns"):
        controls.accuracy_by_cut(pd.DataFrame({"cut": [1]}))
