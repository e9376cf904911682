"""Append-only JSON-lines results store: one finished run per line, flushed and fsynced at once.

A rerun skips keys already present. A run killed mid-write leaves at most a truncated last line: it is
ignored with a warning and cut off before the next append, so no row is ever glued to a partial one.
"""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any, Iterable


class ResultsStore:
    """The rows of one study in ``path`` (JSON lines), indexed by their ``key``."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.rows: dict[str, dict[str, Any]] = {}
        self._load()

    def _load(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        lines = data.split(b"\n")
        complete, tail = lines[:-1], lines[-1]
        for number, line in enumerate(complete, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                if number == len(complete) and not tail.strip():
                    self._drop_partial(data, len(data) - len(line) - 1, f"line {number}")
                    return
                raise ValueError(f"{self.path}: line {number} is not valid JSON ({err})") from err
            self.rows[row["key"]] = row
        if tail.strip():  # no newline at the end: a write that never finished
            try:
                row = json.loads(tail)
            except json.JSONDecodeError:
                self._drop_partial(data, len(data) - len(tail), f"line {len(complete) + 1}")
                return
            self.rows[row["key"]] = row
            with open(self.path, "ab") as fh:  # complete the line so the next append starts clean
                fh.write(b"\n")

    def _drop_partial(self, data: bytes, keep: int, where: str) -> None:
        warnings.warn(f"{self.path}: ignoring a truncated last row ({where}); that run will be redone",
                      RuntimeWarning, stacklevel=3)
        with open(self.path, "r+b") as fh:
            fh.truncate(max(0, keep))

    def __contains__(self, key: str) -> bool:
        return key in self.rows

    def __len__(self) -> int:
        return len(self.rows)

    def append(self, row: dict[str, Any]) -> None:
        """Write one finished run, durably, before anything else happens."""
        if row["key"] in self.rows:
            return  # already stored (e.g. a retried task that finished twice)
        line = json.dumps(row, separators=(",", ":")) + "\n"
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
        self.rows[row["key"]] = row

    def extend(self, rows: Iterable[dict[str, Any]]) -> None:
        for row in rows:
            self.append(row)

    def all(self) -> list[dict[str, Any]]:
        """Every stored row, in insertion order."""
        return list(self.rows.values())
