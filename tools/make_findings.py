"""Write docs/findings.md from the results stores shipped in the repository.

    python tools/make_findings.py [--n-boot 2000] [--seed 0] [--root .] [--out docs/findings.md]

Every number and ✓ in the document is computed by ``functions.analysis`` (``functions.analysis.findings``);
rerun this after the stores change instead of editing the file.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from functions.analysis.findings import build_findings, render  # the installed package (pip install -e .)

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="repository root holding the stores")
    parser.add_argument("--out", type=Path, default=None, help="output file (default: <root>/docs/findings.md)")
    parser.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples per CI")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    sections = build_findings(args.root, n_boot=args.n_boot, seed=args.seed)
    text = render(sections, args.root, n_boot=args.n_boot, seed=args.seed)
    out = args.out or args.root / "docs" / "findings.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(out)
    print(f"wrote {out} ({len(sections)} sections) in {time.perf_counter() - start:.1f} s")
    return out


if __name__ == "__main__":
    main()
