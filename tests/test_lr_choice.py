"""The learning-rate grid, known answers on real training: the rate that validates best is the one kept.

The grid is built so that the answer is known: 1e-7 barely moves the weights in 30 steps and 3.0 makes Adam
diverge, so both stay near chance on validation, while 3e-3 learns digits. The good rate sits in the middle,
so a rule that keeps the first, the last, the smallest or the largest rate fails, and so does one that keeps
the right rate but another rate's model or accuracies.
"""
import pytest

from functions.engine.conditions import RunSpec
from functions.engine.study import Study
from functions.engine.training import evaluate

GOOD, ABSURD = 3e-3, (1e-7, 3.0)
GRID = [ABSURD[0], GOOD, ABSURD[1]]
SPECS = (RunSpec("FR", 0.5, 2, 0), RunSpec("baseline", 0.5, -1, 1))


@pytest.fixture(scope="module")
def make(tmp_path_factory, digits_config):
    root = tmp_path_factory.mktemp("lr_choice")

    def study(grid):
        cfg = digits_config(root, protocol="realistic", min_steps=30, max_steps=30, eval_every=10, lr_grid=grid)
        return Study(cfg, root=root, verbose=False)  # pretraining ignores lr_grid: one shared model

    return study


@pytest.fixture(scope="module")
def alone(make):
    """The row of every spec trained at each rate of the grid on its own: spec → {lr: row}."""
    return {spec: {lr: make([lr]).run_one(spec) for lr in GRID} for spec in SPECS}


def test_the_absurd_rates_validate_near_chance_and_the_good_one_well(alone):
    """The premise of the known answer (5 fine-tuning classes: chance is 0.2)."""
    for spec, rows in alone.items():
        assert rows[GOOD]["val_acc"] > 0.8, spec
        assert all(rows[lr]["val_acc"] < 0.5 for lr in ABSURD), spec


@pytest.mark.parametrize("spec", SPECS, ids=[s.condition for s in SPECS])
def test_the_grid_keeps_the_rate_that_validates_best_with_its_own_model(make, alone, spec):
    study = make(GRID)
    model, row = study.train(spec)
    assert row["lr"] == GOOD and row["lr_grid"] == GRID
    kept = alone[spec][GOOD]  # the same run trained at the good rate alone: same weights, same numbers
    fields = ("train_acc", "val_acc", "test_acc", "steps")
    assert [row[f] for f in fields] == [kept[f] for f in fields]
    target = study.target
    assert evaluate(model, target.x_test, target.y_test) == pytest.approx(row["test_acc"], abs=1e-12)


def test_only_the_kept_network_meets_the_test_split(make, monkeypatch):
    """The test split is evaluated once per run, not once per rate tried (the others' numbers were waste)."""
    import functions.engine.training as training_module

    study = make(GRID)
    y_test, test_evaluations = study.target.y_test, []

    def counting(real):
        def wrapper(net, x, y, *args, **kwargs):
            if len(y) == len(y_test) and bool((y == y_test).all()):
                test_evaluations.append(len(y))
            return real(net, x, y, *args, **kwargs)
        return wrapper

    monkeypatch.setattr(training_module, "evaluate", counting(training_module.evaluate))
    row = study.run_one(SPECS[1])
    assert len(test_evaluations) == 1 and row["lr"] == GOOD
