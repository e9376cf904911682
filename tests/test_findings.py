"""docs/findings.md generator (functions.analysis.findings, tools/make_findings.py).

On small synthetic stores written in the store schema: every number printed equals the value of a table
computed independently here with functions.analysis, ✓ appears exactly where ``significant`` is True,
incomplete repeats are paired only where complete, old stores (no ``init``) are not said to share initial
weights, clustering is reported per fraction. On the repository's shipped stores: the tool runs in < 60 s.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from functions.analysis import findings, findings_format, protocols, stats
from functions.analysis.results import load_results
from functions.engine.conditions import condition_flags
from functions.engine.schema import results_row

REPO = Path(__file__).resolve().parents[1]
STUDY = "MNIST[0-4]->MNIST[5-9]"
N_BOOT = 300
REPEATS = 8


# ----------------------------------------------------------------------------- synthetic stores
def _row(condition, fraction, cut, repeat, acc, **engine):
    freeze, reinit, truncate = condition_flags(condition) or (False, True, False)
    values = dict(
        key=f"{condition}|{fraction}|{cut}|{repeat}", study=STUDY, source_dataset="MNIST", target_dataset="MNIST",
        pretrain_classes=[0, 1, 2, 3, 4], finetune_classes=[5, 6, 7, 8, 9], condition=condition, freeze=freeze,
        reinit=reinit, truncate=truncate, fraction=fraction, cut=cut, repeat=repeat, seed=1000 + repeat, lr=1e-3,
        depth=4, num_channels=16, kernel_size=3, activation="ReLU", pooling="avg2/every2",
        n_train=int(25000 * fraction), train_acc=1.0, val_acc=acc, test_acc=float(acc), epochs=10, seconds=1.0,
        init=None, lr_grid=None, protocol=None, n_val=None, best_epoch=5, steps=None, best_step=None,
        profile="cpu", device="cpu", config_hash="0123456789", finished_at="2026-01-01T00:00:00",
        protocol_variant=None, patience=None, batch_size=None, min_steps=None, max_steps=None, max_epochs=None,
        eval_every=None, evals_per_epoch=None, subset_val_fraction=None)
    values.update(engine)
    row = results_row(**values)
    # an old store's rows lack the engine fields added later (init, protocol, …): leave them out
    later = ("init", "lr_grid", "protocol", "n_val", "steps", "best_step", "protocol_variant", "patience",
             "batch_size", "min_steps", "max_steps", "max_epochs", "eval_every", "evals_per_epoch",
             "subset_val_fraction")
    return {k: v for k, v in row.items() if v is not None or k not in later}


def _write(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def _base(fraction, repeat):
    return 0.60 + 0.01 * repeat + (0.2 if fraction > 0.01 else 0.0)


def fr_ft_rows():
    """Baseline, FR and FT at cuts 1–3: FR cut 1 ± noise (not significant), cuts 2 and 3 always above the
    baseline; FT cut 2 always below FR cut 2, FT cut 3 equal to FR cut 3."""
    rows = []
    for fraction in (0.001, 0.1):
        for r in range(REPEATS):
            b = _base(fraction, r)
            fr = {1: b + (0.002 if r % 2 else -0.002) * (r + 1), 2: b + 0.05 + 0.001 * r, 3: b + 0.10 + 0.002 * r}
            ft = {1: fr[1] + (0.003 if r % 3 else -0.003), 2: fr[2] - 0.01 - 0.001 * r, 3: fr[3]}
            rows.append(_row("baseline", fraction, -1, r, b))
            rows += [_row("FR", fraction, c, r, a) for c, a in fr.items()]
            rows += [_row("FT", fraction, c, r, a) for c, a in ft.items()]
    return rows


def protocol_rows(protocol, n_val, gain, drop=()):
    """One protocol store (init: crn): cut 2 gains ``gain`` in every repeat, cut 1 alternates in sign;
    ``drop`` = (cut, repeat) pairs left out, as in a store a running grid has not finished."""
    rows = []
    for r in range(REPEATS):
        b = 0.55 + 0.01 * r
        accs = {-1: b, 1: b + (0.01 if r % 2 else -0.01) * (1 + r % 3), 2: b + gain + 0.001 * r}
        for cut, acc in accs.items():
            if (cut, r) in drop:
                continue
            condition = "baseline" if cut == -1 else "FR"
            rows.append(_row(condition, 0.001, cut, r, acc, init="crn", protocol=protocol, protocol_variant=protocol,
                             n_val=n_val,
                             steps=500 if protocol != "original" else 20, best_step=100, lr_grid=None,
                             config_hash=f"{protocol}{n_val}", seconds=2.0 if protocol == "original" else 1.0))
    return rows


def clustering_rows():
    """ARI by fraction (0.1 %: 1 image per class, must be skipped), layer, model, method; medians differ by
    fraction so that pooling fractions would change every number."""
    rows = []
    for fraction, n_samples, level in ((0.001, 5, 1.0), (0.05, 100, 0.2), (0.1, 250, 0.5)):
        for r in range(3):
            for i, layer in enumerate(("input", "block0", "head_in")):
                for model in ("pretrained", "finetuned"):
                    for method in ("agglomerative", "kmeans"):
                        ari = level * (i + 1) / 3 + 0.01 * r + (0.05 if model == "finetuned" else 0) + (
                            0.3 if method == "kmeans" else 0)
                        rows.append({"fraction": fraction, "repeat": r, "layer": layer, "channel": -1,
                                     "method": method, "precision": 0.5, "recall": 0.5, "accuracy": 0.5,
                                     "ari": ari, "dataset": "MNIST", "split": "test", "n_samples": n_samples,
                                     "model": model})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    root = tmp_path_factory.mktemp("repo")
    _write(root / "MNIST/results/MNIST_store.jsonl", fr_ft_rows())
    protocol_dir = root / "MNIST/results/protocols"
    _write(protocol_dir / "original.jsonl", protocol_rows("original", 100, 0.10))
    _write(protocol_dir / "realistic.jsonl", protocol_rows("realistic", 5, 0.04, drop={(2, 7)}))
    (root / "MNIST/results/protocols/original_format").mkdir()  # exports are never read as runs
    clustering_dir = root / "MNIST/results/clustering"
    clustering_dir.mkdir(parents=True)
    clustering_rows().to_csv(clustering_dir / "clustering_MNIST.csv", index=False)
    pd.DataFrame({"layer": ["input", "head_in"], "accuracy": [0.9, 0.98], "model": "pretrained"}).to_csv(
        clustering_dir / "probes_MNIST.csv", index=False)
    sections = findings.build_findings(root, n_boot=N_BOOT)
    text = findings.render(sections, root, n_boot=N_BOOT, seed=0)
    return root, {s.title: s for s in sections}, text


def _section(sections, start):
    return next(s for title, s in sections.items() if title.startswith(start))


def parse_tables(markdown: str) -> list[pd.DataFrame]:
    """Every pipe table of a markdown text, as frames of cell strings."""
    tables, block = [], []
    for line in markdown.splitlines() + [""]:
        if line.startswith("|"):
            block.append([c.strip() for c in line.strip().strip("|").split("|")])
        elif block:
            tables.append(pd.DataFrame(block[2:], columns=block[0]))
            block = []
    return tables


def _fmt_points(x):
    return f"{100 * x:+.1f}"


def _fmt_p(p):
    return "–" if not np.isfinite(p) else ("< 0.001" if p < 0.001 else f"{p:.3f}")


def _find(tables, columns):
    return [t for t in tables if set(columns) <= set(t.columns)]


# ----------------------------------------------------------------------------- the numbers
def test_fr_numbers_equal_stats_summarize(synthetic):
    root, sections, text = synthetic
    section = _section(sections, "MNIST 0–4")
    df = load_results(root / "MNIST/results")
    expected = stats.summarize(df[df["condition"].isin(["FR", "baseline"])], by=("study", "fraction"),
                               n_boot=N_BOOT, seed=0)
    (shown,) = _find(parse_tables(section.markdown()), ["arm", "median acc (%)", "Δ (points)"])
    assert len(shown) == len(expected) == 2 * 4
    for (_, want), (_, got) in zip(expected.iterrows(), shown.iterrows()):
        assert got["fraction"] == f"{100 * want['fraction']:g} %" and got["arm"] == want["arm"]
        assert got["median acc (%)"] == f"{100 * want['median']:.1f}"
        if want["arm"] == "baseline":
            assert got["Δ (points)"] == "–" and got["✓"] == ""
            continue
        assert got["Δ (points)"] == _fmt_points(want["diff_vs_baseline"])
        assert got["95 % CI"] == f"[{_fmt_points(want['diff_low'])}, {_fmt_points(want['diff_high'])}]"
        assert got["Holm p"] == _fmt_p(want["p_holm_vs_baseline"])
        assert got["n pairs"] == str(int(want["n_pairs"])) == str(REPEATS)
        assert got["✓"] == ("✓" if want["significant_vs_baseline"] else "")
    # the design: cut 1 never significant, cuts 2 and 3 always (8 positive pairs, Holm over 3 cuts)
    sig = expected.dropna(subset=["n_pairs"]).set_index(["fraction", "arm"])["significant_vs_baseline"]
    assert not sig[(0.001, "cut 1")] and sig[(0.001, "cut 2")] and sig[(0.1, "cut 3")]
    # the reading sentence is generated from the same table
    best = expected[(expected["fraction"] == 0.001) & (expected["arm"] != "baseline")]
    best = best.loc[best["diff_vs_baseline"].idxmax()]
    assert (f"At 0.1 % the largest gain over the baseline is {best['arm']}, "
            f"{_fmt_points(best['diff_vs_baseline'])} points (Holm p = {_fmt_p(best['p_holm_vs_baseline'])}"
            in section.markdown())


def test_ft_vs_fr_is_paired_at_the_same_cut_with_holm_within_fraction(synthetic):
    root, sections, _ = synthetic
    section = _section(sections, "Truncation")
    df = load_results(root / "MNIST/results")
    rows = df[df["condition"].isin(["FT", "FR"])]
    # cut 3 is the last cut: FT and FR there are one arm (the same network and training), never tested
    assert "FT and FR at cut 3 are one arm" in section.markdown()
    rows = rows[rows["cut"] != 3]
    tests = stats.paired_tests(rows, arm_col="condition", by=("study", "fraction", "cut"))
    (shown,) = _find(parse_tables(section.markdown()), ["FT − FR (points)"])
    for fraction in (0.001, 0.1):
        at = tests[tests["fraction"] == fraction].sort_values("cut")
        holm = stats.holm(at["p"])
        got = shown[shown["fraction"] == f"{100 * fraction:g} %"]
        assert list(got["p"]) == [_fmt_p(p) for p in at["p"]]
        assert list(got["Holm p"]) == [_fmt_p(p) for p in holm]
        assert list(got["✓"]) == ["✓" if p < 0.05 else "" for p in holm]
        # FR − FT is the median of the paired differences (arm_a = FR, arm_b = FT here)
        assert list(got["FT − FR (points)"]) == [_fmt_points(0.0 - d + 0.0) for d in at["median_diff"]]
    assert list(shown["✓"]) == ["", "✓", "", "✓"]  # cut 2 always lower


def test_protocol_section_after_the_headline_with_verdict_and_incomplete_repeats(synthetic):
    root, sections, text = synthetic
    assert list(sections)[:2] == ["MNIST 0–4 → 5–9: frozen transfer (FR) vs from scratch",
                                  "Protocol sensitivity: does the small-data gain survive a fair protocol?"]
    section = _section(sections, "Protocol sensitivity")
    df = protocols.load_protocol_results(root / "MNIST/results/protocols")
    gains = protocols.transfer_gains(df, n_boot=N_BOOT)
    shift = protocols.gain_shifts(df, n_boot=N_BOOT)
    assert protocols.verdict(gains, shift) in section.markdown()
    (shown,) = _find(parse_tables(section.markdown()), ["protocol", "cut", "n pairs", "Δ (points)"])
    merged = shown.merge(gains.assign(protocol=gains["protocol_variant"], cut=gains["arm"]), on=["protocol", "cut"])
    assert len(merged) == len(gains) == 4
    assert list(merged["Δ (points)"]) == [_fmt_points(d) for d in merged["median_diff"]]
    assert list(merged["Holm p"]) == [_fmt_p(p) for p in merged["p_holm"]]
    assert list(merged["✓"]) == ["✓" if s else "" for s in merged["significant"]]
    # repeat 7 of realistic cut 2 is missing: 7 complete pairs there, 8 elsewhere
    n = merged.set_index(["protocol", "cut"])["n pairs"]
    assert n[("realistic", "cut 2")] == "7" and n[("original", "cut 2")] == "8" and n[("realistic", "cut 1")] == "8"
    (budget,) = _find(parse_tables(section.markdown()), ["complete repeats"])
    assert dict(zip(budget["protocol"], budget["complete repeats"])) == {"original": "8", "realistic": "7"}
    (walls,) = _find(parse_tables(section.markdown()), ["per run vs original"])
    assert dict(zip(walls["protocol"], walls["per run vs original"])) == {"original": "1.00", "realistic": "0.50"}
    # the wide summary: ✓ in a cell exactly where the gain is significant
    wide = protocols.summary_frame(gains)
    for (study, fraction, arm), row in wide.iterrows():
        for variant, cell in row.items():
            g = gains.set_index(["protocol_variant", "arm"]).loc[(variant, arm)]
            assert cell == _fmt_points(g["median_diff"]) + (" ✓" if g["significant"] else "")


def test_check_marks_exactly_where_significant(synthetic):
    """Every printed table with a ✓ column: ✓ on the rows whose ``significant`` is True, nowhere else."""
    _, sections, text = synthetic
    checked = 0
    for section in sections.values():
        for name, shown in section.shown.items():
            if "✓" not in shown.columns:
                continue
            computed = section.tables[name]
            flag = "significant" if "significant" in computed else "significant_vs_baseline"
            assert list(shown["✓"]) == ["✓" if v is True or v is np.True_ else "" for v in computed[flag]], name
            assert findings_format.md_table(shown) in text
            checked += 1
    assert checked >= 4
    # every ✓ of the document sits in a printed table (wide summaries included) or a sentence
    cells = sum(findings_format.md_table(t).count("✓") for sec in sections.values() for t in sec.shown.values())
    counts = sum(line.count(" ✓") for line in text.splitlines() if not line.startswith("|"))
    assert text.count("✓") == cells + counts


def test_init_is_reported_from_the_rows(synthetic):
    _, sections, _ = synthetic
    old = _section(sections, "MNIST 0–4").markdown()
    assert "None of the 112 runs carries `init: crn`" in old and "do **not** share their initial weights" in old
    assert "same weights" not in old
    new = _section(sections, "Protocol sensitivity").markdown()
    assert "All 47 runs carry `init: crn`" in new  # 2 protocols × 8 repeats × 3 arms, one row missing


def test_clustering_is_reported_per_fraction(synthetic):
    _, sections, text = synthetic
    section = _section(sections, "Where class structure")
    frames = [t for t in parse_tables(section.markdown()) if "median ARI" in t.columns]
    assert [sorted(set(t["fraction"])) for t in frames] == [["5 %"], ["10 %"]]  # one table per fraction
    data = clustering_rows()
    data = data[(data["method"] == "agglomerative")]
    for table in frames:
        fraction = {"5 %": 0.05, "10 %": 0.1}[table["fraction"].iloc[0]]
        for _, got in table.iterrows():
            values = data[(data["fraction"] == fraction) & (data["layer"] == got["layer"])
                          & (data["model"] == got["model"])]["ari"]
            assert got["median ARI"] == f"{values.median():.3f}" and got["repeats"] == "3"
        assert list(table["model"])[:3] == ["pretrained"] * 3
    # 0.1 % holds 1 image per class (5 images, k = 5 fine-tuning classes): skipped and said so
    assert "0.1 %" not in "".join("".join(t["fraction"]) for t in frames)
    assert "clustering at 0.1 %: 1 image(s) per class (< 10), skipped" in text
    assert "**Reading (10 %, 50 images per class, n = 3 repeats).**" in text


def what_transfers_rows(study=STUDY, with_stats=True):
    """Baseline, FR and (``with_stats``) stats_FR and shuffled_FR at cuts 1–2, 0.1 %, 12 repeats (enough for
    a Holm family of 10 comparisons): statistics reach 1 point per cut, the real features 4 points more."""
    rows = []
    for r in range(12):
        b = 0.60 + 0.01 * r
        rows.append(_row("baseline", 0.001, -1, r, b, study=study))
        for k in (1, 2):
            stats_acc = b + 0.01 * k + 0.0005 * r
            rows.append(_row("FR", 0.001, k, r, stats_acc + 0.04 + 0.001 * r, study=study))
            if with_stats:
                rows.append(_row("stats_FR", 0.001, k, r, stats_acc, study=study))
                rows.append(_row("shuffled_FR", 0.001, k, r, b - 0.001 * (r % 3), study=study))
    return [dict(row, key=f"{row['key']}|{study}") for row in rows]


def test_what_transfers_section_is_the_decomposition_of_each_study(tmp_path):
    from functions.analysis import what_transfers

    shuffled_study = f"{STUDY} (blocks shuffled 4x4)"
    _write(tmp_path / "MNIST/results/plain.jsonl", what_transfers_rows())
    _write(tmp_path / "MNIST/results/shuffled.jsonl", what_transfers_rows(shuffled_study, with_stats=False))
    sections = {s.title: s for s in findings.build_findings(tmp_path, n_boot=N_BOOT)}
    section = _section(sections, "What transfers")
    plain = load_results(tmp_path / "MNIST/results/plain.jsonl")
    images = load_results(tmp_path / "MNIST/results/shuffled.jsonl")
    expected = what_transfers.decomposition(plain, shuffled_images=images)
    pd.testing.assert_frame_equal(section.tables[f"what transfers {STUDY}"], expected)
    shown = section.shown[f"what transfers {STUDY}"].set_index("cut")
    assert shown.loc["2", "statistics part"] == "+2.3 ✓" and shown.loc["2", "feature part"] == "+4.6 ✓"
    assert shown.loc["2", "shuffled weights"] == "-0.1 ✓" and shown.loc["2", "n pairs"] == "12"
    assert shown.loc["2", "block-shuffled images"] == "+6.8 ✓"  # the same numbers on the shuffled-image study
    assert "Block-shuffled images: 36 runs." in section.markdown()
    assert "the real features add +4.6 points ✓" in section.markdown()
    # the shuffled-image study is a control, not another setting of the headline section
    headline = next(s for title, s in sections.items() if "frozen transfer" in title)
    assert shuffled_study not in headline.markdown() and STUDY in headline.markdown()


def network_rows(gains: dict, depth: int, channels: int, n: int = 12) -> list[dict]:
    """Baseline and FR at 0.1 % with ``gains[cut]`` points added in every repeat (± a small spread; a gain
    of 0 alternates in sign, so it is never significant)."""
    rows = []
    for r in range(n):
        b = 0.60 + 0.01 * r
        rows.append(_row("baseline", 0.001, -1, r, b, depth=depth, num_channels=channels, seconds=10.0))
        for cut, gain in gains.items():
            noise = (0.001 * (r + 1)) * (1 if r % 2 else -1) if gain == 0 else 0.0005 * r
            rows.append(_row("FR", 0.001, cut, r, b + gain / 100 + noise, depth=depth, num_channels=channels,
                             seconds=20.0))
    return rows


def test_network_size_section_sets_both_networks_side_by_side(tmp_path):
    from functions.analysis import findings_network_size as size

    _write(tmp_path / "MNIST/results/cpu.jsonl", network_rows({1: 0, 2: 3, 3: 6}, 4, 16))
    _write(tmp_path / "MNIST/results/paper_fair/paper.jsonl", network_rows({1: 2, 2: 5, 3: 4}, 6, 64))
    sections = {s.title: s for s in findings.build_findings(tmp_path, n_boot=N_BOOT)}
    section = sections[size.TITLE]
    shown = section.shown["side by side"].set_index("cut")
    assert shown.loc["3", "4 × 16: Δ (points)"] == "+6.3 ✓" and shown.loc["1", "4 × 16: Δ (points)"] == "+0.1"
    assert shown.loc["2", "6 × 64: Δ (points)"] == "+5.3 ✓" and shown.loc["1", "6 × 64: n pairs"] == "12"
    text = section.markdown()
    # 4 × 16: cut 1 flat, largest at the deepest cut → holds; 6 × 64: cut 1 gains significantly → does not
    assert "4 × 16: cut 1 +0.1 points (not significant); largest gain at cut 3 (+6.3 points ✓) — the pattern holds" in text
    assert "6 × 64: cut 1 +2.3 points ✓" in text and "the pattern does not hold" in text
    assert "6 × 64: 48 runs, 0.2 h of training" in text


def test_a_paper_size_grid_with_baselines_only_is_not_compared(tmp_path):
    from functions.analysis import findings_network_size as size

    _write(tmp_path / "MNIST/results/cpu.jsonl", network_rows({1: 0, 2: 3}, 4, 16))
    _write(tmp_path / "MNIST/results/paper_fair/paper.jsonl", network_rows({}, 6, 64, n=2))
    section = {s.title: s for s in findings.build_findings(tmp_path, n_boot=N_BOOT)}[size.TITLE]
    assert "2 runs, 0.0 h of training on one core" in section.markdown() and "nothing to compare" in section.markdown()
    assert section.tables == {}


def test_without_a_paper_size_store_the_section_says_it_is_missing(synthetic):
    _, sections, text = synthetic
    assert "Does the pattern hold" not in text and "no results store at `MNIST/results/paper_fair`" in text


def test_a_fraction_with_only_baseline_runs_is_said_not_tabled(tmp_path):
    lone = [_row("baseline", 0.5, -1, r, 0.9, study="X[0-9]->Y[0-9]") for r in range(2)]
    _write(tmp_path / "MNIST/results/store.jsonl", fr_ft_rows() + [dict(r, key=r["key"] + "|X") for r in lone])
    sections = {s.title: s for s in findings.build_findings(tmp_path, n_boot=N_BOOT)}
    section = next(s for title, s in sections.items() if "frozen transfer" in title)
    assert "- X[0-9]->Y[0-9] at 50 %: 2 baseline runs so far, no FR run yet" in section.markdown()
    assert list(section.tables) == [f"FR {STUDY}"]  # no table (nor reading) for the study without FR runs


def test_header_and_missing_stores(synthetic):
    _, sections, text = synthetic
    assert text.startswith("# Findings")
    assert "Generated by `python tools/make_findings.py` from commit `unknown` on " in text
    assert list(sections)[-1] == "What could not be computed"
    for rel in ("FashionMNIST/results", "cross_domain/results", "MNIST/results/conditions"):
        assert f"no results store at `{rel}`" in text


# ----------------------------------------------------------------------------- the shipped stores
def test_generator_runs_on_the_shipped_stores(tmp_path):
    """The generator runs end to end on the shipped stores (its speed is printed by the tool itself, not
    asserted here: a wall-clock bound fails on a busy machine, which says nothing about the code)."""
    out = tmp_path / "findings.md"
    subprocess.run([sys.executable, str(REPO / "tools/make_findings.py"), "--out", str(out)], cwd=REPO,
                   check=True, capture_output=True, text=True, timeout=900)  # a guard against a hang only
    text = out.read_text(encoding="utf-8")
    titles = [line[3:] for line in text.splitlines() if line.startswith("## ")]
    # the fair headline first, then how the protocol moves it
    assert titles[0].startswith("MNIST 0–4 → 5–9") and titles[1].startswith("Protocol sensitivity")
    assert titles[-1] == "What could not be computed"
    assert "FT vs FR" in " ".join(titles) and "Cross-domain" in " ".join(titles)
