"""The README's first command on a fresh clone: the MNIST study notebook through papermill, with no dataset
anywhere, in the default (``cpu``) profile. Every run it asks for is in the shipped store, so nothing is
trained or read from data; it must end on the headline (the diff-to-baseline figure and the Δ table with ✓
marks) and write nothing into the repository — the executed notebook goes to a temporary folder.
"""
import os
import subprocess
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = "MNIST/empirical_experiment.ipynb"


def _files(folder: Path) -> dict[str, tuple[int, int]]:
    """(size, mtime) of every file under ``folder`` except git-ignored scratch (smoke runs, lock files)."""
    out = {}
    for path in folder.rglob("*"):
        rel = path.relative_to(folder)
        if path.is_file() and "smoke" not in rel.parts and not path.name.endswith((".lock", ".out.ipynb")) \
                and not any(p.endswith(".claims") for p in rel.parts):
            stat = path.stat()
            out[str(rel)] = (stat.st_size, stat.st_mtime_ns)
    return out


def _texts(cell) -> str:
    parts = []
    for output in cell.get("outputs", []):
        parts.append(output.get("text", ""))
        for kind in ("text/plain", "text/html", "text/markdown"):
            parts.append(str(output.get("data", {}).get(kind, "")))
    return "\n".join(parts)


def test_readme_quick_start_runs_on_the_shipped_results_without_data(tmp_path):
    pytest.importorskip("papermill")
    command = f"papermill --cwd MNIST {NOTEBOOK} {NOTEBOOK.replace('.ipynb', '.out.ipynb')}"
    assert command in (REPO / "README.md").read_text(), "the README's quick start changed: update this test"
    empty = tmp_path / "no_data"
    empty.mkdir()
    env = dict(os.environ, TL_STUDY_DATA=str(empty), TL_STUDY_PROFILE="cpu")
    env.pop("MPLBACKEND", None)  # the notebook's own (inline) backend, so figures become image outputs
    before = _files(REPO / "MNIST")
    out = tmp_path / "empirical_experiment.out.ipynb"
    result = subprocess.run(["papermill", "--cwd", "MNIST", NOTEBOOK, str(out)], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert _files(REPO / "MNIST") == before, "the quick start wrote into the repository"

    nb = nbformat.read(out, as_version=4)
    everything = "\n".join(_texts(c) for c in nb.cells if c.cell_type == "code")
    assert ", 0 to run" in everything, "every run must come from the shipped store"
    assert "Total params" in everything  # the torchinfo summary of the pretrained network
    code = [c for c in nb.cells if c.cell_type == "code"]
    figure, table = code[-2], code[-1]  # the notebook ends on the headline
    assert "diff_to_baseline" in figure.source
    assert any("image/png" in o.get("data", {}) for o in figure.outputs), "no figure rendered"
    assert "delta_table" in table.source and "✓" in _texts(table)
    # the headline names its protocol and repeats, and gives differences in points, fractions in per cent
    assert "protocol realistic, tuned lr | repeats " in _texts(figure)
    assert "realistic, tuned lr" in _texts(table) and "0.1 %" in _texts(table) and "pairs" in _texts(table)
