"""A grid that finishes is complete: ``Study.run`` returns only once every planned run is stored, with real
processes holding claims, dying, or finishing; and the default worker pool (digits, small grids).

Claim holders are separate Python processes that claim one run of the grid and then either get killed
(kill -9) or train and store it; a pool worker is killed mid-grid. Every test checks that the grid comes
back whole, each run stored once, with the same rows as the grid trained in one process.
"""
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from functions.engine import pool as pool_module
from functions.engine.conditions import Condition, RunSpec
from functions.engine.config import ConfigError
from functions.engine.pool import LocalPool, default_workers
from functions.engine.study import InProcess, Study

CONDITIONS = ("baseline", "FR")
METRICS = ("train_acc", "val_acc", "test_acc", "epochs", "best_epoch", "n_train", "seed")
HELD = RunSpec("FR", 0.5, 1, 1)  # the run another process claims


def outcome(rows):
    return {r["key"]: tuple(r[m] for m in METRICS) for r in rows}


def stored_keys(study):
    return [json.loads(line)["key"] for line in study.store_path().read_text().splitlines() if line.strip()]


def wait_for(condition, timeout=300.0, what="a condition"):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting for {what}")
        time.sleep(0.05)


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # rows compare bit for bit with the workers


@pytest.fixture(scope="module")
def tmp(tmp_path_factory):
    return tmp_path_factory.mktemp("completion")


@pytest.fixture(scope="module")
def grid_config(digits_config):
    """Configs of one digits grid (2 blocks; 12 runs), each with its own store, one pretrained model."""
    def make(tmp, name):
        return digits_config(tmp, depth=2, pooling_every_n_layers=1, percentages=[0.1, 0.5], repeats=2,
                             results_dir=str(tmp / name))
    return make


@pytest.fixture(scope="module")
def reference(tmp, grid_config):
    """The grid trained in this process: what every other way of running it must store."""
    study = Study(grid_config(tmp, "reference"), root=tmp, verbose=False)
    return outcome(study.run(CONDITIONS, progress=False, executor="inprocess").to_dict("records"))


class Lines(logging.Handler):
    """The study's log lines (the grid-level ones: waiting, taking over), collected for the test."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(record.getMessage())

    def saying(self, words):
        return [line for line in self.lines if words in line]


@pytest.fixture
def study_log():
    handler, logger = Lines(), logging.getLogger("functions.engine.study")
    before = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(before)


def start_claim_holder(tmp, cfg, name):
    """A separate process that claims HELD, says so in a file, then trains and stores it once the file
    ``<name>.go`` appears (or waits there until it is killed)."""
    ready, go = tmp / f"{name}.ready", tmp / f"{name}.go"
    script = textwrap.dedent(f"""
        import pathlib, time, torch
        from functions.engine.conditions import Condition, RunSpec
        from functions.engine.config import StudyConfig
        from functions.engine.study import Study
        torch.set_num_threads(1)
        study = Study(StudyConfig.from_json({cfg.to_json()!r}), root={str(tmp)!r}, verbose=False)
        spec = RunSpec(*{(HELD.condition, HELD.fraction, HELD.cut, HELD.repeat)!r})
        assert study.store.try_claim(spec.key)
        pathlib.Path({str(ready)!r}).write_text("claimed")
        while not pathlib.Path({str(go)!r}).exists():
            time.sleep(0.05)
        study.store.append(study.run_one(spec))
    """)
    holder = subprocess.Popen([sys.executable, "-c", script])
    wait_for(lambda: ready.exists() or holder.poll() is not None, what="the claim holder to claim its run")
    assert holder.poll() is None, "the claim holder exited before claiming"
    return holder, go


def run_in_background(study, executor):
    """``study.run`` in a thread; returns (thread, outcome dict filled with 'df' or 'error')."""
    result = {}

    def target():
        try:
            result["df"] = study.run(CONDITIONS, progress=False, executor=executor)
        except BaseException as err:  # noqa: BLE001 - handed to the test
            result["error"] = err

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, result


# ----------------------------------------------------------------------------- claims held by other processes
@pytest.mark.parametrize("executor", ["inprocess", "pool"])
def test_a_claim_holder_killed_after_the_grid_passed_its_run_is_taken_over(tmp, reference, grid_config,
                                                                           study_log, executor):
    cfg = grid_config(tmp, f"killed_holder_{executor}")
    holder, _ = start_claim_holder(tmp, cfg, f"killed_{executor}")
    study = Study(cfg, root=tmp, verbose=False)
    runner = LocalPool(2) if executor == "pool" else InProcess()
    try:
        thread, result = run_in_background(study, runner)
        # the survivor has trained every other run and waits for the one the holder claimed
        wait_for(lambda: study_log.saying("waiting for runs") or not thread.is_alive(), what="the wait")
        assert thread.is_alive() and len(stored_keys(study)) == len(reference) - 1
        waiting = study_log.saying("waiting for runs")[0]
        assert f"pid {holder.pid}" in waiting and HELD.key in waiting
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        thread.join(300)
    finally:
        holder.kill()
        if isinstance(runner, LocalPool):
            runner.close()
    assert not thread.is_alive() and "error" not in result, result.get("error")
    assert study_log.saying("training them") and HELD.key in study_log.saying("training them")[0]
    keys = stored_keys(study)
    assert len(keys) == len(set(keys)) == len(reference)
    assert outcome(result["df"].to_dict("records")) == reference


def test_a_live_claim_holder_is_waited_for_until_it_stores_its_run(tmp, reference, grid_config, study_log):
    cfg = grid_config(tmp, "live_holder")
    holder, go = start_claim_holder(tmp, cfg, "live")
    study = Study(cfg, root=tmp, verbose=False)
    trained, run_one = [], study.run_one
    study.run_one = lambda spec, cache=None: trained.append(spec.key) or run_one(spec, cache)
    try:
        thread, result = run_in_background(study, "inprocess")
        wait_for(lambda: study_log.saying("waiting for runs") or not thread.is_alive(), what="the wait")
        assert thread.is_alive() and f"pid {holder.pid}" in study_log.saying("waiting for runs")[0]
        go.write_text("go")  # the holder trains and stores its run now; the survivor returns after it
        thread.join(300)
        assert holder.wait(60) == 0
    finally:
        holder.kill()
    assert not thread.is_alive() and "error" not in result, result.get("error")
    assert HELD.key not in trained and len(trained) == len(reference) - 1  # the holder's run was not redone
    keys = stored_keys(study)
    assert len(keys) == len(set(keys)) == len(reference)
    assert outcome(result["df"].to_dict("records")) == reference


# ----------------------------------------------------------------------------- the worker pool
def test_a_pool_worker_killed_mid_grid_is_replaced_and_the_grid_completes(tmp, reference, grid_config):
    study = Study(grid_config(tmp, "killed_worker"), root=tmp, verbose=False)
    killed = []
    with LocalPool(2) as pool:
        def kill_a_worker():
            """Once the first rows are back, SIGKILL one worker process."""
            wait_for(lambda: len(study.store) >= 1 and pool.worker_pids() or not thread.is_alive(), what="a row")
            if thread.is_alive():
                killed.append(pool.worker_pids()[0])
                os.kill(killed[0], signal.SIGKILL)

        thread, result = run_in_background(study, pool)
        killer = threading.Thread(target=kill_a_worker, daemon=True)
        killer.start()
        thread.join(600)
        killer.join(10)
    assert killed, "no worker was killed while the grid ran"
    assert not thread.is_alive() and "error" not in result, result.get("error")
    keys = stored_keys(study)
    assert len(keys) == len(set(keys)) == len(reference)
    assert outcome(result["df"].to_dict("records")) == reference


def test_the_default_trains_on_a_pool_of_single_threaded_workers(tmp, reference, grid_config, monkeypatch, capsys):
    monkeypatch.setenv(pool_module.WORKERS_VARIABLE, "2")
    study = Study(grid_config(tmp, "default_pool"), root=tmp, verbose=True)
    df = study.run(CONDITIONS, progress=False)
    assert "12 to run on 2 worker processes" in capsys.readouterr().out
    assert outcome(df.to_dict("records")) == reference


def test_default_workers_pool_only_when_it_pays(monkeypatch):
    monkeypatch.delenv(pool_module.WORKERS_VARIABLE, raising=False)
    monkeypatch.setattr(pool_module, "available_cores", lambda: 4)
    many = pool_module.POOL_MIN_RUNS
    assert default_workers(many, "cpu") == 4 and default_workers(3 * many, "cpu") == 4
    assert default_workers(many - 1, "cpu") == 1  # a handful of runs: starting workers costs more
    assert default_workers(1000, "cuda") == 1  # one device, one process
    monkeypatch.setattr(pool_module, "available_cores", lambda: 1)
    assert default_workers(1000, "cpu") == 1
    monkeypatch.setenv(pool_module.WORKERS_VARIABLE, "3")
    assert default_workers(1000, "cpu") == 3
    monkeypatch.setenv(pool_module.WORKERS_VARIABLE, "1")
    assert default_workers(1000, "cpu") == 1
    monkeypatch.setenv(pool_module.WORKERS_VARIABLE, "many")
    with pytest.raises(ConfigError, match="TL_STUDY_WORKERS='many'"):
        default_workers(1000, "cpu")


def test_a_study_that_cannot_be_shipped_trains_in_process_by_default(tmp, grid_config):
    """A condition holding something pickle refuses (here: a lock) keeps the grid in this process."""
    lock = threading.Lock()

    def fr_with_a_lock(study, spec, lock=lock):
        return study.build_model(RunSpec("FR", spec.fraction, spec.cut, spec.repeat))

    locked = Condition("FR_locked", builder=fr_with_a_lock, cuts=lambda cfg: [1])
    study = Study(grid_config(tmp, "unpicklable"), root=tmp, verbose=False, conditions={"FR_locked": locked})
    with LocalPool(2, fallback=True) as pool, pytest.warns(RuntimeWarning, match="training in this process"):
        study.run(("FR_locked",), progress=False, executor=pool)
        assert pool.worker_pids() == []
    assert sorted(stored_keys(study)) == sorted(s.key for s in study.plan(("FR_locked",)))
    with LocalPool(2) as pool, pytest.raises(TypeError, match="pickle"):
        Study(grid_config(tmp, "unpicklable_strict"), root=tmp, verbose=False,
              conditions={"FR_locked": locked}).run(("FR_locked",), progress=False, executor=pool)
