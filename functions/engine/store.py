"""Append-only JSON-lines results store: one finished run per line, flushed and fsynced at once.

A rerun skips keys already present; a second process on the same file skips keys the first has stored
or claimed.

Concurrency guarantee. Any number of processes on one machine may open, read and append to the same
store at once. Readers never modify the file: they trust only newline-terminated lines (the newline
is the commit mark of a row), so a reader that opens the store while another process is writing sees
a prefix of complete rows and at worst warns about, and ignores, the unfinished last line. Writers
take an exclusive lock (``flock`` on the sidecar ``<store>.lock``), read whatever other processes
appended since, and write a row only if its key is not stored yet, so every key is stored exactly
once. A row is on disk (fsynced) before ``append`` returns. A line left unfinished by a killed
writer is ignored by readers and cut off by the next writer, under the lock, before it appends; that
run is redone. ``try_claim`` lets a process reserve a key it is about to train, so that a second
process on the same grid trains something else; claims of processes that died on this machine, or
older than 24 h, are taken over. Limitations: the lock is an advisory ``flock``, reliable on local
file systems (on NFS it depends on the client); on Windows the lock is ``msvcrt.locking`` on the lock
file and the liveness of a claim's process is not checked (a claim there expires after 24 h only).
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import socket
import tempfile
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None
    import msvcrt

CLAIM_TIMEOUT_S = 24 * 3600  # a claim this old is stale even if its process still runs
_HOST = socket.gethostname()


class ResultsStore:
    """The rows of one study in ``path`` (JSON lines), indexed by their ``key``."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.claims_dir = self.path.with_name(self.path.name + ".claims")
        self.rows: dict[str, dict[str, Any]] = {}
        self._offset = 0  # bytes of the file already read: always the end of a complete row
        self._lines = 0  # lines already read, for error messages
        self._torn_at: int | None = None  # offset of the torn last line already warned about
        self.refresh()

    def __contains__(self, key: str) -> bool:
        return key in self.rows

    def __len__(self) -> int:
        return len(self.rows)

    def all(self) -> list[dict[str, Any]]:
        """Every stored row, in file order."""
        return list(self.rows.values())

    # -- reading
    def refresh(self) -> int:
        """Read the rows other processes appended since the last read, without locking; returns how many."""
        return self._read(repair=False)

    def _read(self, repair: bool) -> int:
        """Read new complete rows from ``self._offset`` on; ``repair`` (lock held) cuts off a torn tail."""
        try:
            with open(self.path, "rb") as fh:
                if os.fstat(fh.fileno()).st_size < self._offset:  # rewritten by someone else: start over
                    self.rows.clear()
                    self._offset = self._lines = 0
                    self._torn_at = None
                fh.seek(self._offset)
                data = fh.read()
        except FileNotFoundError:
            return 0
        *complete, tail = data.split(b"\n")
        added = 0
        for i, line in enumerate(complete):
            last = i == len(complete) - 1 and not tail.strip()
            row = self._parse(line, self._lines + 1, last)
            if row is _TORN:
                self._torn(repair, "not valid JSON")
                return added
            self._offset += len(line) + 1
            self._lines += 1
            if row is not None:
                added += row["key"] not in self.rows
                self.rows[row["key"]] = row
        if tail.strip():  # no newline after it: still being written, or its writer was killed
            self._torn(repair, "no newline at its end")
        return added

    def _parse(self, line: bytes, number: int, last: bool) -> dict[str, Any] | None | object:
        """The row on ``line`` (None when blank, ``_TORN`` when the last line is not JSON); raise if bad."""
        if not line.strip():
            return None
        try:
            row = json.loads(line)
        except ValueError as err:  # JSONDecodeError, or bytes that are not UTF-8
            if last:
                return _TORN  # e.g. zeros a crash left behind: treat like an unfinished write
            raise ValueError(f"{self.path}: line {number} is not valid JSON ({err})") from err
        if not isinstance(row, dict) or "key" not in row:
            what = "has no \"key\"" if isinstance(row, dict) else f"is a {type(row).__name__}, not an object"
            raise ValueError(f"{self.path}: line {number} is not a results row: it {what}")
        return row

    def _torn(self, repair: bool, why: str) -> None:
        """Ignore the unfinished last line; a writer (``repair``, lock held) cuts it off."""
        if self._torn_at != self._offset:  # warn once per torn line, not on every refresh
            self._torn_at = self._offset
            warnings.warn(f"{self.path}: ignoring a truncated last row (line {self._lines + 1}, {why}): still "
                          f"being written, or cut short by a crash; that run will be redone", RuntimeWarning,
                          stacklevel=4)
        if repair:
            os.truncate(self.path, self._offset)
            self._torn_at = None

    # -- writing
    def append(self, row: dict[str, Any]) -> bool:
        """Write one finished run durably, unless some process already stored its key: True when written.

        Also releases this process's claim on the key."""
        key = row["key"]
        if key in self.rows:
            return False  # already stored (e.g. a retried task that finished twice)
        with self._locked():
            self._read(repair=True)  # rows other processes appended since our last read
            written = key not in self.rows
            if written:
                self._write_line((json.dumps(row, separators=(",", ":")) + "\n").encode("utf-8"))
                self.rows[key] = row
            self._drop_claim(key)
        return written

    def _write_line(self, line: bytes) -> None:
        """Append ``line`` with one write and fsync it (lock held)."""
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o666)
        try:
            view = memoryview(line)
            while view:  # regular files write everything at once; loop only to be safe
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        self._offset += len(line)
        self._lines += 1

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the store's exclusive lock (on a sidecar file, so the store itself is only ever appended)."""
        with open(self.lock_path, "a+b") as fh:
            _lock(fh)
            try:
                yield
            finally:
                _unlock(fh)

    # -- claims
    def try_claim(self, key: str) -> bool:
        """Reserve ``key`` for this process: False when it is stored, or claimed by another live process."""
        with self._locked():
            self._read(repair=True)
            if key in self.rows:
                return False
            claim = self._claim(key)
            if claim is not None and not _is_mine(claim) and not _is_stale(claim):
                return False
            path = self._claim_path(key)
            path.parent.mkdir(exist_ok=True)
            path.write_text(json.dumps({"key": key, "pid": os.getpid(), "host": _HOST, "time": time.time()}))
            return True

    def release(self, *keys: str) -> None:
        """Drop this process's claims on ``keys`` (runs given up); another process's claims are left alone."""
        with self._locked():
            for key in keys:
                self._drop_claim(key)

    def live_claims(self, keys) -> dict[str, dict[str, Any]]:
        """The claims other live processes hold on ``keys`` (key → ``{"pid", "host", "time"}``): keys that
        are stored, unclaimed, claimed by this process or by one that died are left out."""
        held = {}
        with self._locked():
            self._read(repair=True)
            for key in keys:
                claim = self._claim(key) if key not in self.rows else None
                if claim is not None and not _is_mine(claim) and not _is_stale(claim):
                    held[key] = claim
        return held

    def _claim_path(self, key: str) -> Path:
        # keys may hold any character: name the file by a hash of the key
        return self.claims_dir / (hashlib.sha1(key.encode("utf-8")).hexdigest() + ".json")

    def _claim(self, key: str) -> dict[str, Any] | None:
        """The claim on ``key`` (lock held): None when there is none; ``{}`` when unreadable (stale)."""
        try:
            claim = json.loads(self._claim_path(key).read_text())
        except FileNotFoundError:
            return None
        except ValueError:  # a claim half written by a killed process
            return {}
        return claim if isinstance(claim, dict) else {}

    def _drop_claim(self, key: str) -> None:
        """Remove the claim on ``key`` if it is this process's (lock held)."""
        claim = self._claim(key)
        if claim is not None and _is_mine(claim):
            self._claim_path(key).unlink(missing_ok=True)


_TORN = object()  # _parse's answer for an unfinished last line


def _lock(fh) -> None:
    """Block until this process holds the exclusive lock on the open file ``fh``."""
    if fcntl is not None:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        return
    fh.seek(0)
    while True:
        try:
            msvcrt.locking(fh.fileno(), msvcrt.LK_LOCK, 1)
            return
        except OSError:  # LK_LOCK gives up after 10 s: keep waiting
            continue


def _unlock(fh) -> None:
    if fcntl is not None:
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    else:
        fh.seek(0)
        msvcrt.locking(fh.fileno(), msvcrt.LK_UNLCK, 1)


def _is_mine(claim: dict[str, Any]) -> bool:
    return claim.get("pid") == os.getpid() and claim.get("host") == _HOST


def _is_stale(claim: dict[str, Any]) -> bool:
    """True for an unreadable claim, one older than CLAIM_TIMEOUT_S, or one whose process died (this host)."""
    try:
        pid, host, since = int(claim["pid"]), str(claim["host"]), float(claim["time"])
    except (KeyError, TypeError, ValueError):
        return True
    if time.time() - since > CLAIM_TIMEOUT_S:
        return True
    return host == _HOST and not _pid_alive(pid)


def _pid_alive(pid: int) -> bool:
    if fcntl is None:
        return True  # Windows: os.kill(pid, 0) would terminate the process; rely on the timeout
    try:
        os.kill(pid, 0)  # signal 0: only checks that the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by another user
    return True


def check_writable(folder: str | os.PathLike) -> Path:
    """Create ``folder`` if needed and check a file can be created in it; raise naming it otherwise."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-check-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        message = f"cannot write results to {folder}: {err.strerror or err}; pass a writable folder"
        if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise PermissionError(err.errno, message) from err
        raise OSError(err.errno, message) from err
    return folder
