"""How long the rest of a grid will take, from the stored runs' seconds (functions.engine.progress)."""
import pytest

from functions.engine.conditions import RunSpec
from functions.engine.progress import duration_text, training_estimate


def row(condition, fraction, cut, seconds, repeat=0):
    return dict(condition=condition, fraction=fraction, cut=cut, repeat=repeat, seconds=seconds)


STORED = [row("baseline", 0.01, -1, s) for s in (10.0, 30.0, 20.0)] + [
    row("FR", 0.01, 1, 4.0), row("FR", 0.01, 1, 6.0), row("FR", 0.01, 2, 100.0), row("FR", 0.1, 1, 50.0)]


def test_each_run_is_priced_at_the_median_of_the_closest_stored_runs():
    todo = [RunSpec("baseline", 0.01, -1, 3),  # same condition, fraction and cut: median 20
            RunSpec("FR", 0.01, 1, 5),          # median of 4 and 6: 5
            RunSpec("FR", 0.01, 3, 0),          # no cut 3 yet: FR at 1 %, median of 4, 6, 100 = 6
            RunSpec("stats_FR", 0.1, 2, 0)]     # nothing of that condition: anything at 10 %, 50
    assert training_estimate(STORED, todo) == pytest.approx(20 + 5 + 6 + 50)


def test_no_estimate_without_a_run_alike_or_without_runs_to_do():
    assert training_estimate(STORED, [RunSpec("baseline", 0.5, -1, 0)]) is None  # no 50 % run stored
    assert training_estimate([], [RunSpec("FR", 0.01, 1, 0)]) is None
    assert training_estimate(STORED, []) == 0.0


def test_durations_read_in_the_unit_a_person_would_use():
    assert [duration_text(s) for s in (45, 600, 5 * 3600 + 1800)] == ["45 s", "10 min", "5.5 h"]


def test_the_grid_line_says_how_long_the_runs_to_do_will_take(tmp_path, digits_config, capsys):
    from functions.engine.study import Study

    cfg = digits_config(tmp_path, percentages=[0.5], repeats=2, cuts=[1])
    Study(cfg, verbose=False).run(("baseline",), progress=False)  # stores 2 baseline runs, no FR yet
    Study(cfg, verbose=True).run(("baseline", "FR"), progress=False)
    line = next(l for l in capsys.readouterr().out.splitlines() if "to run" in l)
    assert "2 to run (about" in line and "of training at the stored runs' pace)" in line


def test_the_pace_of_this_machine_reprices_the_runs_left():
    """Stored seconds may come from a faster machine: once three runs took 3x their price here, the runs
    left are priced at 3x too; a run skipped here (another process took it) is no longer left."""
    from functions.engine.progress import Pace

    pace = Pace({"a": 10.0, "b": 10.0, "c": 20.0, "d": 10.0, "e": 30.0})
    pace.finished("a", 30.0)
    pace.finished("b", 30.0)
    assert pace.ratio() is None and pace.text() == ""  # two runs: too few to say
    pace.finished("c", 60.0)
    assert pace.ratio() == pytest.approx(3.0)
    assert pace.seconds_left() == pytest.approx(3.0 * (10 + 30))
    pace.finished("e")  # skipped: not trained here, not timed
    assert pace.ratio() == pytest.approx(3.0) and pace.seconds_left() == pytest.approx(30.0)
    assert pace.text() == "about 30 s of training left (3.0x the stored runs' pace)"
    pace.finished("d", 10.0)
    assert pace.seconds_left() is None  # nothing left


def test_the_log_line_says_how_much_training_is_left_at_this_machines_pace(tmp_path, digits_config, caplog):
    import logging

    from functions.engine.study import Study

    cfg = digits_config(tmp_path, percentages=[0.5], repeats=5, cuts=[1])
    Study(cfg, verbose=False).run(("baseline",), progress=False)  # prices for the FR runs: baseline seconds
    with caplog.at_level(logging.INFO, logger="functions.engine.progress"):
        Study(cfg, verbose=False).run(("FR",), progress=False, executor="inprocess")
    lines = [r.getMessage() for r in caplog.records if " FR f=" in r.getMessage()]
    assert len(lines) == 5
    assert ["training left" in line for line in lines] == [False, False, True, True, False]
