"""Notebook hygiene: one papermill parameters cell, python3 kernel, no absolute paths, misspelt
parameters fail. (Every notebook is also executed under nbval in the smoke profile via pytest's
testpaths.)"""
import re
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p for folder in ("MNIST", "FashionMNIST", "CIFAR", "cross_domain")
                   for p in (REPO / folder).glob("*.ipynb")) + [REPO / "example_visualizations.ipynb"]
NOTEBOOKS = [p for p in NOTEBOOKS if p.exists() and not p.name.endswith(".out.ipynb")]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: str(p.relative_to(REPO)))
def test_notebook_structure(path):
    nb = nbformat.read(path, as_version=4)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    tagged = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged 'parameters'"
    assert "profile" in tagged[0].source
    assert nb.cells[0].cell_type == "markdown", "first cell says what question the notebook answers"
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not re.search(r"['\"](/work|/home|/Users|C:\\)", cell.source), "absolute path in a cell"


def test_misspelt_parameter_is_an_error(tmp_path):
    papermill = pytest.importorskip("papermill")
    nb = REPO / "MNIST" / "empirical_experiment.ipynb"
    with pytest.raises(papermill.PapermillExecutionError, match="unknown notebook parameter"):
        papermill.execute_notebook(str(nb), str(tmp_path / "out.ipynb"), cwd=str(tmp_path),
                                   parameters={"profile": "smoke", "percentage": [0.1]},
                                   progress_bar=False, kernel_name="python3")
