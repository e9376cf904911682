"""The findings document (``docs/findings.md``): every number and every ✓ computed from the results stores.

:func:`build_findings` reads the stores of a repository laid out as :data:`LAYOUT` into sections
(:class:`~functions.analysis.findings_common.Section`, built by ``findings_protocols`` and
``findings_studies``); :func:`render` writes the markdown (header, conventions, sections);
``tools/make_findings.py`` runs both. Each section keeps the tables its numbers come from
(``Section.tables``), computed by ``functions.analysis``, so tests can check the text against them. Only the
fixed sentence templates are written by hand; the statistical conventions are stated once, in :func:`render`.
"""
from __future__ import annotations

import datetime as _dt
import subprocess
from pathlib import Path
from typing import Iterable, Sequence

from functions.analysis.findings_common import ALPHA, Section, _existing
from functions.analysis.findings_network_size import network_size_section
from functions.analysis.findings_protocols import original_vs_default_section, protocol_section
from functions.analysis.findings_studies import (clustering_section, conditions_section, ft_vs_fr_section,
                                                 repeats_section, transfer_section, what_transfers_section)
from functions.analysis.results import load_results
from functions.engine.datasets import study_title

COMMAND = "python tools/make_findings.py"
# Where the shipped stores live, relative to the repository root (one entry per section that reads them).
LAYOUT = {
    "protocols": ("MNIST/results/protocols", "cross_domain/results/protocols"),
    # the stores of the original protocol without common random numbers, set apart from the default ones
    "original": ("MNIST/results/original_protocol", "FashionMNIST/results/original_protocol",
                 "cross_domain/results/original_protocol"),
    "mnist": ("MNIST/results",),
    # the original study's 6 x 64 network under the default protocol (tools/reproduce_results.sh paper_fair)
    "paper_size": ("MNIST/results/paper_fair",),
    "fashion": ("FashionMNIST/results",),
    "cross_domain": ("cross_domain/results",),
    # the what-transfers controls live in the headline settings' own stores (same subsets and fresh weights)
    "what_transfers": ("MNIST/results", "cross_domain/results"),
    "conditions": ("MNIST/results/conditions",),
    "surgical": ("MNIST/results/conditions", "cross_domain/results/surgical"),
    "clustering": ("MNIST/results/clustering", "FashionMNIST/results/clustering",
                   "cross_domain/results/clustering"),
}
CLASSES_FROM = {"MNIST/results/clustering": "mnist", "FashionMNIST/results/clustering": "fashion"}


# ----------------------------------------------------------------------------- the document
STORE_SUFFIXES = (".jsonl", ".json", ".csv")


def git_state(root: Path, stores: Iterable[str] = ()) -> tuple[str, list[str]]:
    """(short commit of HEAD or ``unknown``, store files that differ from it)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout
    try:
        commit = git("rev-parse", "--short", "HEAD").strip()
        listed = git("status", "--porcelain", "--untracked-files=all", "--", *stores).splitlines() if stores else []
        # only files the tables are read from count (figures written beside the stores do not)
        changed = [line[3:] for line in listed if line[3:].endswith(STORE_SUFFIXES)]
    except (OSError, subprocess.CalledProcessError):
        return "unknown", []
    return commit, changed


def build_findings(root: str | Path, n_boot: int = 2000, seed: int = 0,
                   layout: dict[str, Sequence[str]] | None = None) -> list[Section]:
    """Every section, from the stores under ``root`` laid out as ``layout`` (default :data:`LAYOUT`); a
    missing store becomes a line of the last section (``What could not be computed``)."""
    root = Path(root).resolve()
    layout = {**LAYOUT, **(layout or {})}
    sections: list[Section] = []
    missing: list[str] = []

    def run(key: str, make):
        found, absent = _existing(root, layout[key])
        missing.extend(f"no results store at `{a}`" for a in absent)
        if found:
            sections.append(make(found))

    fr_title = "{}: frozen transfer (FR) vs from scratch".format
    run("mnist", lambda p: transfer_section(fr_title(study_title("MNIST", "MNIST", "regular")), p, root, "FR",
                                            n_boot, seed))
    run("protocols", lambda p: protocol_section(p, root, n_boot, seed))
    originals, _ = _existing(root, layout["original"])
    protocol_stores, _ = _existing(root, layout["protocols"])
    defaults = [p for key in ("mnist", "fashion", "cross_domain") for p in _existing(root, layout[key])[0]]
    if defaults and (originals or protocol_stores):
        sections.append(original_vs_default_section(originals, protocol_stores, defaults, root, n_boot, seed))
    fashion = f"FashionMNIST class split ({study_title('FashionMNIST', 'FashionMNIST', 'regular')})"
    run("fashion", lambda p: transfer_section(fr_title(fashion), p, root, "FR", n_boot, seed))
    run("mnist", lambda p: ft_vs_fr_section(p, root, n_boot, seed))
    cpu_headline, _ = _existing(root, layout["mnist"])
    run("paper_size", lambda p: network_size_section(p, cpu_headline, root))
    run("cross_domain", lambda p: transfer_section("Cross-domain: MNIST ↔ FashionMNIST (FR)", p, root, "FR",
                                                   n_boot, seed))
    run("what_transfers", lambda p: what_transfers_section(p, root))
    conditions, absent = _existing(root, layout["conditions"])
    surgical, absent_s = _existing(root, layout["surgical"])
    missing.extend(f"no results store at `{a}`" for a in dict.fromkeys(absent + absent_s))
    if conditions or surgical:
        sections.append(conditions_section(conditions, surgical, root, n_boot, seed))
    for rel in layout["clustering"]:
        folder = root / rel
        if folder.is_dir() and any(folder.glob("clustering_*.csv")):
            k = _fine_tune_classes(root, layout, CLASSES_FROM.get(rel))
            sections.append(clustering_section(folder, root, k, n_boot, seed))
        else:
            missing.append(f"no clustering results at `{rel}`")
    studies = [p for key in ("mnist", "fashion", "cross_domain") for p in _existing(root, layout[key])[0]]
    if studies:
        sections.append(repeats_section(studies, root, seed=seed))
    tail = Section("What could not be computed")
    for s in sections:
        missing.extend(s.missing)
    tail.add(*(f"- {m}" for m in missing) if missing else ["- nothing: every store listed above was read."])
    sections.append(tail)
    return sections


def _fine_tune_classes(root: Path, layout: dict, key: str | None) -> int | None:
    """k of a clustered split: the number of fine-tuning classes of the study store ``layout[key]``."""
    found, _ = _existing(root, layout[key]) if key else ([], [])
    classes = load_results(*found)["finetune_classes"].dropna() if found else []
    return len(classes.iloc[0]) if len(classes) else None


def render(sections: Sequence[Section], root: str | Path, n_boot: int, seed: int,
           now: _dt.datetime | None = None) -> str:
    """The whole document: header (generated by, commit, time), conventions, contents, sections."""
    root = Path(root).resolve()
    stores = sorted({s for rels in LAYOUT.values() for s in rels})
    commit, changed = git_state(root, stores)
    now = now or _dt.datetime.now(_dt.timezone.utc)
    head = ["# Findings", "",
            f"<!-- Generated file: do not edit. Regenerate with `{COMMAND}`. -->", "",
            f"Generated by `{COMMAND}` from commit `{commit}` on {now:%Y-%m-%d %H:%M} UTC, from the results "
            "stores shipped in the repository. Every number and every ✓ below is computed by "
            "`functions.analysis` (see `functions/analysis/findings.py`); only the sentence templates are "
            "written by hand."]
    if changed:
        head += ["", f"The stores were read from the working tree, which differed from that commit in "
                     f"{len(changed)} store file(s) (uncommitted rows): {', '.join(f'`{c}`' for c in changed)}."]
    head += ["", "**Conventions.** Δ is the median over repeats of the paired difference (arm − reference, "
             "same `repeat` = same training subset), in percentage points of test accuracy. p-values are "
             "two-sided exact Wilcoxon signed-rank tests on the paired differences (zero differences ranked "
             "with the others, then dropped — Pratt; midranks for ties; every sign pattern enumerated up to 20 "
             "nonzero differences, a seeded Monte-Carlo beyond), Holm-corrected over the family named in each "
             f"section; ✓ marks Holm p < {ALPHA:g}. The 95 % CI is the interval that matches the test: the "
             "exact Wilcoxon-inverted interval of the Hodges–Lehmann shift (median of the Walsh averages; its "
             "achieved level is at least 95 %), \"n too small\" below 6 pairs. Only repeats present in both "
             "arms are paired (`n pairs`). Descriptive intervals of single medians (clustering) are percentile "
             f"bootstraps ({n_boot} resamples, seed {seed}).", "", "**Sections.**", ""]
    head += [f"{i}. {s.title}" for i, s in enumerate(sections, 1)]
    return "\n".join(head) + "\n\n" + "\n".join(s.markdown() for s in sections)
