"""Atomic file writes: a reader, or a run killed mid-write, sees the old file or the new one, never half.

Each writer writes a temporary file in the target's folder (same file system, so the rename is atomic),
flushes and fsyncs it, then ``os.replace``-s it over the target. A write that fails leaves the target
as it was and removes its temporary file.
"""
from __future__ import annotations

import os
import secrets
import stat
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, BinaryIO, Iterator


@contextmanager
def atomic_open(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """A binary file that replaces ``path`` when the block ends without error; nothing changes otherwise."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    # os.open with 0o666 leaves the umask to decide, like a plain open() would (mkstemp forces 0o600)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        with suppress(FileNotFoundError):  # keep the mode of the file being replaced
            os.chmod(tmp, stat.S_IMODE(os.stat(path).st_mode))
        os.replace(tmp, path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (POSIX; Windows cannot open a folder, and needs no such step)."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse fsync on a folder: the data is still written
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Replace ``path``'s content by ``data`` atomically and durably."""
    with atomic_open(path) as fh:
        fh.write(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Replace ``path``'s content by ``text`` atomically and durably (newlines written as given)."""
    return atomic_write_bytes(path, text.encode(encoding))


def atomic_write_csv(frame, path: str | os.PathLike, **to_csv_kwargs) -> Path:
    """``frame.to_csv(path, **to_csv_kwargs)`` for a pandas DataFrame, atomically."""
    return atomic_write_text(path, frame.to_csv(**to_csv_kwargs))


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save(obj, path)``, atomically: a killed save leaves the previous file (or none)."""
    import torch  # here, so that the other writers do not need torch

    with atomic_open(path) as fh:
        torch.save(obj, fh)
    return Path(path)
