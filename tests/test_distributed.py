"""The grid on a real Dask LocalCluster (2 worker processes) and on a process pool, on digits.

Every distributed result is compared with the in-process run of the same grid (same seeds → the same
accuracies, whichever worker ran it); one test kills a worker mid-grid, one kills the client.
"""
import concurrent.futures
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import warnings

import pytest
import torch

from functions.engine import distributed, tasks
from functions.engine.cache import PrefixCache
from functions.engine.conditions import CONDITIONS as REGISTERED
from functions.engine.conditions import RunSpec
from functions.engine.distributed import make_executor, run_with_executor
from functions.engine.pool import LocalPool
from functions.engine.study import InProcess, Study
from functions.engine.tasks import SharedPrefixes, pack_context, plan_tasks, run_batch, worker_context

CONDITIONS = ("baseline", "FR")
METRICS = ("train_acc", "val_acc", "test_acc", "epochs", "best_epoch", "n_train", "seed")


def outcome(rows):
    return {r["key"]: tuple(r[m] for m in METRICS) for r in rows}


def stored_keys(study):
    return [json.loads(line)["key"] for line in study.store_path().read_text().splitlines() if line.strip()]


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # rows compare bit for bit with the workers


@pytest.fixture(scope="module")
def tmp(tmp_path_factory):
    return tmp_path_factory.mktemp("distributed")


@pytest.fixture(scope="module")
def tiny_config(digits_config):
    """Configs of one module-wide digits study (2 blocks, pool every block), each with its own store."""
    def make(tmp, name, **overrides):
        return digits_config(tmp, depth=2, pooling_every_n_layers=1, results_dir=str(tmp / name), **overrides)
    return make


@pytest.fixture(scope="module")
def reference(tmp, tiny_config):
    """The grid run in this process: what every executor must reproduce."""
    study = Study(tiny_config(tmp, "in_process"), root=tmp, verbose=False)
    _ = study.pretrained  # pretrained once here; the other studies load it from pretrained_dir
    return outcome(study.run(CONDITIONS, progress=False).to_dict("records"))


@pytest.fixture(scope="module")
def client():
    c = make_executor("local-cluster", n_workers=2, threads_per_worker=1, dashboard_address=None)
    yield c
    c.close()


# ----------------------------------------------------------------------------- without a cluster
def test_plan_tasks_batches_small_fractions_and_covers_every_run(tmp, reference, tiny_config):
    study = Study(tiny_config(tmp, "plan", percentages=[0.02, 0.5, 1.0], repeats=[6, 3, 2]), root=tmp,
                  verbose=False)
    specs = study.plan(CONDITIONS)
    tasks = plan_tasks(study, specs)
    assert sorted(s.key for t in tasks for s in t) == sorted(s.key for s in specs)
    for t in tasks:  # one (condition, fraction, cut) per task
        assert len({(s.condition, s.fraction, s.cut) for s in t}) == 1
    sizes = {(t[0].condition, t[0].fraction, t[0].cut): len(t) for t in tasks}
    assert tasks[0][0].condition == "baseline" and tasks[0][0].fraction == 1.0  # most expensive first
    assert sizes[("baseline", 1.0, -1)] == sizes[("FR", 0.5, 1)] == 1  # expensive: one run per task
    assert sizes[("baseline", 0.02, -1)] == sizes[("FR", 0.02, 1)] == 6  # ≈13 images: all repeats at once
    assert sizes[("FR", 1.0, 2)] == 2  # full data, but only the head trains on cached features
    assert {len(t) for t in plan_tasks(study, specs, repeats_per_task=4) if t[0].fraction == 0.02} == {3}
    with pytest.raises(ValueError, match="repeats_per_task"):
        plan_tasks(study, specs, repeats_per_task=0)


def test_shared_prefixes_match_the_in_process_cache_and_are_computed_once(tmp, reference, tiny_config):
    study = Study(tiny_config(tmp, "prefixes"), root=tmp, verbose=False)
    shared, fr = SharedPrefixes(study), REGISTERED["FR"]
    specs = [RunSpec("FR", 0.5, 2, r) for r in range(2)]
    cache = shared.task_cache(fr, specs)
    rows = torch.cat([study.subset(0.5, r) for r in range(2)])
    in_process = PrefixCache(study.pretrained, study.target, rows, "cpu", 1e9)
    in_process.advance_to(2)
    for part in ("train", "val", "test"):
        assert torch.equal(cache.parts[part], in_process.parts[part]), part
    source = id(study.pretrained)
    assert sorted(shared.features) == [(source, 1), (source, 2)]  # cut 2 derived from cut 1
    # later tasks reuse the worker's validation/test features instead of recomputing them
    for k, part in ((2, "val"), (1, "test")):
        later = shared.task_cache(fr, [RunSpec("FR", 0.1, k, 0)])
        assert later.parts[part] is shared.features[(source, k)][part]
    assert shared.task_cache(REGISTERED["UR"], specs) is None  # fine-tuned prefix: nothing to cache


def test_a_worker_builds_the_study_once_and_writes_nothing(tmp, reference, tiny_config):
    study = Study(tiny_config(tmp, "worker"), root=tmp, verbose=False)
    specs = study.plan(CONDITIONS)
    key, blob = pack_context(worker_context(study, specs))
    path = tmp / "context.pkl"
    path.write_bytes(blob)
    rows = run_batch(key, specs[:1], str(path)) + run_batch(key, specs[-2:], str(path))
    path.unlink()  # built already: later tasks of this process need no context at all
    rows += run_batch(key, specs[1:2], str(path))
    state = tasks._STATES.pop(key)
    assert state.tasks_run == 3 and state.study is not study
    assert outcome(rows) == {s.key: reference[s.key] for s in specs[:2] + specs[-2:]}
    assert not study.store_path().exists() and not state.study.store_path().exists()


def test_make_executor_rejects_bad_arguments():
    assert isinstance(make_executor("", kind="local"), InProcess)
    assert isinstance(make_executor("inprocess"), InProcess)
    with pytest.raises(ValueError, match="kind 'spark' is unknown; allowed"):
        make_executor("", kind="spark")
    with pytest.raises(ValueError, match="scheduler_address 'not an address!'"):
        make_executor("not an address!")
    with pytest.raises(ValueError, match="n_workers must be an integer >= 1"):
        make_executor("local", n_workers=0)
    with pytest.raises(ValueError, match="needs kind='dask'"):
        make_executor("tcp://10.0.0.1:8786", kind="process")
    with pytest.raises(ValueError, match="executor must be"):
        run_with_executor(Study.__new__(Study), [RunSpec("baseline", 0.1, -1, 0)], executor="cluster")


def test_process_pool_reproduces_in_process_results(tmp, reference, tiny_config):
    study = Study(tiny_config(tmp, "pool"), root=tmp, verbose=False)
    pool = make_executor(kind="process", n_workers=2)
    assert isinstance(pool, LocalPool) and (pool.n_workers, pool.torch_threads) == (2, 1)
    with pool:
        df = study.run(CONDITIONS, progress=False, executor=pool)
        assert len(pool.worker_pids()) == 2  # spawned on demand, kept for the next grid
    assert outcome(df.to_dict("records")) == reference
    assert pool.worker_pids() == []  # the end of the with block stopped them


def test_a_raw_process_pool_wrapped_by_as_executor_reproduces_in_process_results(tmp, reference, tiny_config):
    import multiprocessing

    study = Study(tiny_config(tmp, "raw_pool"), root=tmp, verbose=False)
    raw = concurrent.futures.ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn"),
                                                 initializer=tasks.set_torch_threads, initargs=(1,))
    with distributed.as_executor(raw) as pool:
        df = study.run(CONDITIONS, progress=False, executor=pool)
    assert outcome(df.to_dict("records")) == reference


def test_study_run_takes_executors_not_raw_pools(tmp, tiny_config):
    study = Study(tiny_config(tmp, "raw"), root=tmp, verbose=False)
    with concurrent.futures.ThreadPoolExecutor(1) as raw:
        with pytest.raises(TypeError, match="make_executor"):
            study.run(CONDITIONS, progress=False, executor=raw)
        wrapped = distributed.as_executor(raw)
        assert wrapped.backend is raw and distributed.as_executor(wrapped) is wrapped
    assert distributed.as_executor(None) is None
    assert not study.store_path().exists() or len(study.store) == 0  # refused before any run


# ----------------------------------------------------------------------------- on a LocalCluster
def test_local_cluster_reproduces_in_process_results(tmp, reference, tiny_config, client):
    assert len(client.nthreads()) == 2
    study = Study(tiny_config(tmp, "dask"), root=tmp, verbose=False)
    df = study.run(CONDITIONS, progress=False, executor=client)
    assert outcome(df.to_dict("records")) == reference
    assert sorted(stored_keys(study)) == sorted(reference)
    assert study.pending(study.plan(CONDITIONS)) == []  # a rerun has nothing left to submit
    assert client.run(lambda: len(tasks._STATES)) == dict.fromkeys(client.nthreads(), 0)  # freed


def test_worker_killed_mid_grid_is_retried_without_duplicates(tmp, reference, tiny_config, client):
    study = Study(tiny_config(tmp, "killed"), root=tmp, verbose=False)
    pids_before = client.run(os.getpid)
    killed = {}

    def kill_a_busy_worker():
        """Once the first rows are back, SIGKILL a worker that is running a task."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not killed:
            if len(study.store) >= 1:
                busy = client.run(lambda dask_worker: len(dask_worker.state.executing))
                for address, n in busy.items():
                    if n and address in pids_before:
                        os.kill(pids_before[address], signal.SIGKILL)
                        killed[address] = pids_before[address]
                        break
            time.sleep(0.02)

    killer = threading.Thread(target=kill_a_busy_worker, daemon=True)
    killer.start()
    stored = run_with_executor(study, study.plan(CONDITIONS), client, progress=False, repeats_per_task=1)
    killer.join()
    assert killed, "no worker was killed while the grid ran"
    keys = stored_keys(study)
    assert stored == len(keys) == len(set(keys)) == len(reference)
    assert outcome(study.store.all()) == reference
    # the nanny replaced the killed process
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(client.nthreads()) < 2:
        time.sleep(0.2)
    assert set(client.run(os.getpid).values()) - set(pids_before.values())


def test_crashed_client_resumes_the_grid(tmp, reference, tiny_config, client):
    cfg = tiny_config(tmp, "crashed")
    script = textwrap.dedent(f"""
        from distributed import Client
        from functions.engine.config import StudyConfig
        from functions.engine.distributed import run_with_executor
        from functions.engine.study import Study
        study = Study(StudyConfig.from_json({cfg.to_json()!r}), root={str(tmp)!r}, verbose=False)
        run_with_executor(study, study.plan({CONDITIONS!r}), Client({client.scheduler.address!r}),
                          progress=False, repeats_per_task=1)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script])
    study = Study(cfg, root=tmp, verbose=False)
    deadline = time.monotonic() + 90
    while proc.poll() is None and time.monotonic() < deadline:
        if study.store_path().exists() and len(study.store_path().read_text().splitlines()) >= 2:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a row cut off by the kill is dropped
        resumed = Study(cfg, root=tmp, verbose=False)
    already = len(resumed.store)
    assert 2 <= already < len(reference)
    df = resumed.run(CONDITIONS, progress=False, executor=client)
    keys = stored_keys(resumed)
    assert len(keys) == len(set(keys)) == len(reference)
    assert outcome(df.to_dict("records")) == reference
