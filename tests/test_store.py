"""The results store under real concurrent processes: no duplicate rows, no lost rows, claims, torn tails."""
import json
import multiprocessing
import os
import time
import warnings

import pytest

from functions.engine import store as store_mod
from functions.engine.store import ResultsStore, check_writable

# fork: children inherit the imported package at once (a spawned child would re-import torch)
needs_fork = pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs fork")
ctx = multiprocessing.get_context("fork") if hasattr(os, "fork") else None


def row(key, payload=""):
    return {"key": key, "payload": payload}


def keys_in_file(path):
    return [json.loads(line)["key"] for line in path.read_text().splitlines()]


def run_children(*procs, timeout=20):
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout)
        assert p.exitcode == 0, f"child exited with {p.exitcode}"


# ----------------------------------------------------------------------------- one process
def test_two_handles_in_one_process_store_a_key_once(tmp_path):
    path = tmp_path / "r.jsonl"
    a, b = ResultsStore(path), ResultsStore(path)
    assert a.append(row("k1")) is True
    assert b.append(row("k1", "again")) is False  # b had not read k1 yet: append re-reads under the lock
    assert b.rows["k1"]["payload"] == ""
    a.append(row("k2"))
    assert "k2" not in b and b.refresh() == 1 and "k2" in b
    assert keys_in_file(path) == ["k1", "k2"]


@pytest.mark.parametrize("tail", [b'{"key": "half", "payload": "x', b"\0\0\0\0\n"],
                         ids=["unfinished line", "zeros after a crash"])
def test_torn_tail_is_ignored_by_readers_and_cut_off_by_a_writer(tmp_path, tail):
    path = tmp_path / "r.jsonl"
    full = b"".join(json.dumps(row(f"k{i}")).encode() + b"\n" for i in range(3))
    path.write_bytes(full + tail)
    with pytest.warns(RuntimeWarning, match=r"r\.jsonl: ignoring a truncated last row \(line 4"):
        s = ResultsStore(path)
    assert list(s.rows) == ["k0", "k1", "k2"]
    s.refresh()
    assert path.read_bytes() == full + tail  # readers never modify the file
    assert s.append(row("k3")) is True
    assert keys_in_file(path) == ["k0", "k1", "k2", "k3"]
    assert path.read_bytes().startswith(full) and ResultsStore(path).all() == s.all()


@pytest.mark.parametrize("line, missing", [("{}", 'has no "key"'), ("[1, 2]", "is a list, not an object")])
@pytest.mark.parametrize("where", ["middle", "last"])
def test_a_row_without_key_names_file_and_line(tmp_path, line, missing, where):
    path = tmp_path / "r.jsonl"
    lines = ['{"key": "a"}', line] + (['{"key": "b"}'] if where == "middle" else [])
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=rf"r\.jsonl: line 2 is not a results row: it {missing}"):
        ResultsStore(path)


def test_invalid_json_in_the_middle_names_file_and_line(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"key": "a"}\n{"key": "b", "pay\n{"key": "c"}\n')
    with pytest.raises(ValueError, match=r"r\.jsonl: line 2 is not valid JSON"):
        ResultsStore(path)


def test_claims_by_another_host_expire_after_the_timeout(tmp_path):
    s = ResultsStore(tmp_path / "r.jsonl")
    claim = s._claim_path("k")
    claim.parent.mkdir()
    claim.write_text(json.dumps({"key": "k", "pid": 1, "host": "elsewhere", "time": time.time()}))
    assert s.try_claim("k") is False  # cannot tell whether a process on another host is alive
    claim.write_text(json.dumps({"key": "k", "pid": 1, "host": "elsewhere",
                                 "time": time.time() - store_mod.CLAIM_TIMEOUT_S - 60}))
    assert s.try_claim("k") is True
    claim.write_text("{half a cla")  # written by a process killed mid-claim
    assert ResultsStore(s.path).try_claim("k") is True


def test_append_releases_the_claim_and_a_stored_key_cannot_be_claimed(tmp_path):
    s = ResultsStore(tmp_path / "r.jsonl")
    assert s.try_claim("k") is True and s.try_claim("k") is True  # claiming again is harmless
    assert s._claim_path("k").exists()
    s.append(row("k"))
    assert not s._claim_path("k").exists()
    assert s.try_claim("k") is False


def test_check_writable_creates_the_folder_and_leaves_nothing(tmp_path):
    folder = tmp_path / "a" / "results"
    assert check_writable(folder) == folder
    assert folder.is_dir() and list(folder.iterdir()) == []


def test_check_writable_names_a_read_only_folder(tmp_path):
    folder = tmp_path / "results"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        if os.access(folder, os.W_OK):
            pytest.skip("chmod 0o555 does not stop this user (root?) from writing")
        with pytest.raises(PermissionError, match=rf"cannot write results to {folder}"):
            check_writable(folder)
        with pytest.raises(PermissionError, match="results/sub"):
            check_writable(folder / "sub")  # cannot even create it
    finally:
        folder.chmod(0o755)


def test_check_writable_names_the_folder_whatever_the_user(tmp_path, monkeypatch):
    def refused(**kwargs):
        raise OSError(30, "Read-only file system")  # EROFS: what root meets on a read-only mount

    monkeypatch.setattr(store_mod.tempfile, "mkstemp", refused)
    with pytest.raises(PermissionError, match=rf"cannot write results to {tmp_path}: Read-only file system"):
        check_writable(tmp_path)


# ----------------------------------------------------------------------------- several processes
def _writer(path, keys, barrier, written):
    s = ResultsStore(path)  # opened before the other writes anything: its rows are stale by then
    barrier.wait()
    written.put(sum(s.append(row(k, f"by {os.getpid()}")) for k in keys))


@needs_fork
def test_two_writers_store_every_key_exactly_once(tmp_path):
    path = tmp_path / "r.jsonl"
    keys = [f"k{i:02d}" for i in range(30)]
    barrier, written = ctx.Barrier(2), ctx.Queue()
    run_children(ctx.Process(target=_writer, args=(path, keys, barrier, written)),
                 ctx.Process(target=_writer, args=(path, keys[::-1], barrier, written)))
    assert written.get(timeout=5) + written.get(timeout=5) == 30
    assert sorted(keys_in_file(path)) == keys  # 30 lines, 30 distinct keys


def _append_rows(path, n, started):
    s = ResultsStore(path)
    started.wait()
    for i in range(n):
        s.append(row(f"k{i:03d}", "x" * 3000))  # long rows: a reader often meets one half written


def _read_repeatedly(path, n, started, done, report):
    warnings.simplefilter("ignore")  # the half-written last row is reported, and expected
    seen, problems, last_size = [], [], 0
    started.set()
    opens = 0
    while opens < n or (not done.is_set() and opens < 20 * n):
        keys = list(ResultsStore(path).rows)
        opens += 1
        size = path.stat().st_size if path.exists() else 0
        if keys != [f"k{i:03d}" for i in range(len(keys))]:
            problems.append(f"not a prefix: {keys[-3:]}")
        if size < last_size:
            problems.append(f"file shrank from {last_size} to {size} bytes")
        last_size = size
        seen.append(len(keys))
    report.put((seen, problems))


@needs_fork
def test_readers_opening_the_store_during_appends_lose_nothing(tmp_path):
    path = tmp_path / "r.jsonl"
    started, done, report = ctx.Event(), ctx.Event(), ctx.Queue()
    reader = ctx.Process(target=_read_repeatedly, args=(path, 300, started, done, report))
    writer = ctx.Process(target=_append_rows, args=(path, 200, started))
    reader.start()
    run_children(writer)
    done.set()
    seen, problems = report.get(timeout=20)
    reader.join(10)
    assert reader.exitcode == 0 and problems == []
    assert any(0 < n < 200 for n in seen), "the reader never overlapped the writer"
    assert keys_in_file(path) == [f"k{i:03d}" for i in range(200)]
    assert len(ResultsStore(path)) == 200


def _claim_and_die(path, key, claimed, release, answer):
    answer.value = ResultsStore(path).try_claim(key)
    claimed.set()
    release.wait(10)
    os._exit(0)  # dies holding the claim: no release, no cleanup


def _holder_of(path, key):
    """A live process that has claimed ``key`` in the store at ``path`` and holds it until its ``release``
    event is set; returns (process, release)."""
    claimed, release, answer = ctx.Event(), ctx.Event(), ctx.Value("i", -1)
    holder = ctx.Process(target=_claim_and_die, args=(path, key, claimed, release, answer))
    holder.start()
    assert claimed.wait(10) and answer.value == 1
    return holder, release


@needs_fork
def test_a_claim_blocks_others_until_its_process_dies(tmp_path):
    path = tmp_path / "r.jsonl"
    a, release = _holder_of(path, "k")
    b = ResultsStore(path)
    assert b.try_claim("k") is False  # A is alive and training k
    assert b.try_claim("other") is True
    release.set()
    a.join(10)  # reaped: its pid no longer exists
    assert b.try_claim("k") is True  # A's claim is stale: taken over
    go, answer = ctx.Event(), ctx.Value("i", -1)
    go.set()
    run_children(ctx.Process(target=_claim_and_die, args=(path, "k", ctx.Event(), go, answer)))
    assert answer.value == 0  # now B's claim holds against others
    b.release("k")
    assert not b._claim_path("k").exists()


@needs_fork
def test_live_claims_name_the_other_live_holders_only(tmp_path):
    path = tmp_path / "r.jsonl"
    a, release = _holder_of(path, "held")
    b = ResultsStore(path)
    assert b.try_claim("mine") and b.try_claim("stored")
    b.append(row("stored"))
    held = b.live_claims(["held", "mine", "stored", "free"])
    assert list(held) == ["held"] and held["held"]["pid"] == a.pid  # B's own, stored and free keys: none
    release.set()
    a.join(10)
    assert b.live_claims(["held"]) == {}  # its process died: nobody holds it any more
    b.release("mine", "held")  # several at once; another process's claim is left alone
    assert not b._claim_path("mine").exists() and b._claim_path("held").exists()
