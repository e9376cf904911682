"""Merge the results of another checkout (a second machine, a git worktree that ran a grid) into this one.

    python tools/merge_stores.py OTHER_CHECKOUT [--into .] [--dry-run]

Every results store (``*/results/**/*.jsonl``) of OTHER_CHECKOUT is merged into the store of the same
path here through :class:`functions.engine.store.ResultsStore`: a row is appended only when its key is not
stored yet (under the store's lock, so a grid writing here at the same time loses nothing and duplicates
nothing); an unfinished last line of the other store is ignored. Pretrained models (``pretrained_models/``
``*.pth`` and their ``*.json``) that are missing here are copied atomically. Nothing here is ever
overwritten: a key stored on both sides with different values, or a model file whose bytes differ, is
reported (it means one of the two runs was not reproducible bit for bit) and this checkout's copy kept.
"""
from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from functions.engine.store import ResultsStore

SKIP_PARTS = {".git", ".venv", "smoke", ".ipynb_checkpoints"}  # smoke results are test output, never merged
MODEL_SUFFIXES = (".pth", ".json")


@dataclass
class MergeReport:
    """What a merge added, per file, and what it found different on both sides."""
    rows: dict[str, int] = field(default_factory=dict)      # store (relative path) -> rows appended
    models: list[str] = field(default_factory=list)         # model files copied
    conflicts: list[str] = field(default_factory=list)      # "path: key" stored differently on both sides

    def lines(self) -> list[str]:
        out = [f"{path}: +{n} rows" for path, n in self.rows.items() if n]
        out += [f"{path}: copied" for path in self.models]
        out += [f"differs on both sides, kept this checkout's: {c}" for c in self.conflicts]
        return out or ["nothing to merge: every row and model is here already"]


def _wanted(path: Path, root: Path) -> bool:
    return not SKIP_PARTS.intersection(path.relative_to(root).parts)


def store_files(root: Path) -> list[Path]:
    """The results stores under ``root`` (JSON lines inside a ``results`` folder), smoke output excluded."""
    return sorted(p for p in root.glob("*/results/**/*.jsonl") if _wanted(p, root))


def model_files(root: Path) -> list[Path]:
    """Pretrained models and their info files under ``root``."""
    return sorted(p for p in root.glob("**/pretrained_models/*") if p.suffix in MODEL_SUFFIXES and _wanted(p, root))


def _same_row(a: dict, b: dict) -> bool:
    """Rows of one key agree on everything but when and how long they ran."""
    ignore = {"seconds", "finished_at"}
    return {k: v for k, v in a.items() if k not in ignore} == {k: v for k, v in b.items() if k not in ignore}


def merge_store(source: Path, dest: Path, dry_run: bool, report: MergeReport, name: str) -> None:
    """Append the rows of ``source`` whose keys ``dest`` lacks (file order kept)."""
    theirs = ResultsStore(source).all()
    ours = ResultsStore(dest) if not dry_run else None
    known = ours.rows if ours else (ResultsStore(dest).rows if dest.exists() else {})
    added = 0
    for row in theirs:
        if row["key"] in known:
            if not _same_row(known[row["key"]], row):
                report.conflicts.append(f"{name}: {row['key']}")
            continue
        added += 1 if dry_run else ours.append(row)
    report.rows[name] = added


def copy_model(source: Path, dest: Path, dry_run: bool, report: MergeReport, name: str) -> None:
    """Copy a model file that is missing here (via a temporary file: never half a model)."""
    if dest.exists():
        if not filecmp.cmp(source, dest, shallow=False):
            report.conflicts.append(name)
        return
    report.models.append(name)
    if dry_run:
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    with source.open("rb") as original, tempfile.NamedTemporaryFile(
            dir=dest.parent, prefix=f".{dest.name}.", delete=False) as tmp:
        shutil.copyfileobj(original, tmp)
    shutil.copymode(source, tmp.name)  # a temporary file is private (0600); the model keeps its own mode
    Path(tmp.name).replace(dest)


def merge(other: Path, into: Path, dry_run: bool = False) -> MergeReport:
    """Merge every store and pretrained model of checkout ``other`` into checkout ``into``."""
    other, into = other.resolve(), into.resolve()
    if other == into:
        raise ValueError(f"merge_stores: {other} is this checkout; give another one")
    report = MergeReport()
    for path in store_files(other):
        rel = path.relative_to(other)
        merge_store(path, into / rel, dry_run, report, rel.as_posix())
    for path in model_files(other):
        rel = path.relative_to(other)
        copy_model(path, into / rel, dry_run, report, rel.as_posix())
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("other", type=Path, help="the checkout whose results are merged in")
    parser.add_argument("--into", type=Path, default=Path(__file__).resolve().parents[1],
                        help="the checkout that receives them (default: this repository)")
    parser.add_argument("--dry-run", action="store_true", help="say what would be merged, change nothing")
    args = parser.parse_args(argv)
    if not args.other.is_dir():
        parser.error(f"{args.other} is not a folder")
    report = merge(args.other, args.into, args.dry_run)
    print("\n".join(report.lines()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
