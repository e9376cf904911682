"""Notebook hygiene: one papermill parameters cell with typed parameters, python3 kernel, no absolute
paths, no stale papermill injected-parameters cells, every notebook as its template generates it,
templates that are valid Python, misspelt parameters fail and papermill strings are converted. (Every
notebook is also executed under nbval in the smoke profile via pytest's testpaths.)"""
import ast
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p for folder in ("MNIST", "FashionMNIST", "CIFAR", "cross_domain")
                   for p in (REPO / folder).glob("*.ipynb")) + [REPO / "example_visualizations.ipynb"]
NOTEBOOKS = [p for p in NOTEBOOKS if p.exists() and not p.name.endswith(".out.ipynb")]
TEMPLATES = sorted((REPO / "tools" / "notebook_templates").glob("*.py"))


def _load_tool(name: str):
    """A script of ``tools/`` as a module, loaded from its file (tools/ is scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(name, REPO / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build_notebooks = _load_tool("build_notebooks")


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


def test_committed_notebooks_match_their_templates():
    """``python tools/build_notebooks.py --check``: cell types, sources and tags as the templates generate them."""
    result = subprocess.run([sys.executable, "tools/build_notebooks.py", "--check"], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr


def test_every_committed_notebook_has_a_template():
    generated = {path for _, path, _ in build_notebooks.targets()}
    assert set(NOTEBOOKS) <= generated, sorted(str(p) for p in set(NOTEBOOKS) - generated)
    assert {p.stem for p in TEMPLATES} == set(build_notebooks.TARGETS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: str(p.relative_to(REPO)))
def test_no_injected_parameters_cell(path):
    """A papermill-rendered copy keeps an 'injected-parameters' cell that silently overrides the defaults
    when the notebook is opened in JupyterLab; committed notebooks carry none."""
    nb = nbformat.read(path, as_version=4)
    injected = [i for i, c in enumerate(nb.cells) if "injected-parameters" in c.get("metadata", {}).get("tags", [])]
    assert not injected, f"cells {injected} are papermill injected-parameters cells"


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_templates_are_valid_python_without_lint_errors(path):
    """Templates are real Python files: they parse, and pyflakes finds nothing but what a ``# noqa`` line
    accepts (names the template deliberately leaves to the folder's parameter lines)."""
    source = path.read_text(encoding="utf-8")
    ast.parse(source, filename=str(path))
    import io

    from pyflakes import api, reporter as reporter_module  # a test dependency (requirements.txt)

    out = io.StringIO()
    api.check(source, str(path), reporter_module.Reporter(out, out))
    lines = source.splitlines()
    problems = [m for m in out.getvalue().splitlines()
                if (n := re.match(r".*?:(\d+):", m)) and "# noqa" not in lines[int(n.group(1)) - 1]]
    assert not problems, "\n".join(problems)


def test_percent_parser_cells_tags_magics_and_placeholders():
    text = ("# note about the template, not a cell\n"
            "# %% [markdown]\n# # {{title}}\n#\n# text\n\n"
            "# %%\n# %matplotlib inline\nimport os\n\n\n"
            '# %% tags=["parameters"]\nx: int = 1\n# {{folder_parameters}}\n')
    cells = build_notebooks.parse_percent(text)
    assert [c["cell_type"] for c in cells] == ["markdown", "code", "code"]
    assert cells[0]["source"] == "# {{title}}\n\ntext"
    assert cells[1]["source"] == "%matplotlib inline\nimport os"
    assert cells[2]["tags"] == ["parameters"]
    values = {"title": "T", "folder_parameters": ['a: str = "A"', "b: int = 2"]}
    assert build_notebooks.substitute(cells[0]["source"], values, "t", "markdown") == "# T\n\ntext"
    assert build_notebooks.substitute(cells[2]["source"], values, "t") == 'x: int = 1\na: str = "A"\nb: int = 2'
    with pytest.raises(build_notebooks.TemplateError, match="no value"):
        build_notebooks.substitute("{{other}}", values, "t")
    with pytest.raises(build_notebooks.TemplateError, match="comment lines only"):
        build_notebooks.parse_percent("# %% [markdown]\nnot a comment\n")


def test_check_lists_a_notebook_that_differs(tmp_path):
    nb = build_notebooks.build("empirical_experiment", build_notebooks.TARGETS["empirical_experiment"]["MNIST/empirical_experiment.ipynb"])
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    assert build_notebooks.differences(nb, path) == []
    nb.cells[1].source += "\nimport os"
    nbformat.write(nb, path)
    expected = build_notebooks.build("empirical_experiment", build_notebooks.TARGETS["empirical_experiment"]["MNIST/empirical_experiment.ipynb"])
    assert build_notebooks.differences(expected, path) == ["cell 1: source differs from template cell 1"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_parameter_is_typed_for_papermill(path):
    """``papermill --help-notebook`` shows a type for every parameter (papermill's own parser; it cannot read
    ``X | None``, hence ``Optional[X]``)."""
    translators = pytest.importorskip("papermill.translators")
    nb = nbformat.read(path, as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", []))
    names = [node.target.id if isinstance(node, ast.AnnAssign) else node.targets[0].id
             for node in ast.parse(cell.source).body if isinstance(node, (ast.Assign, ast.AnnAssign))]
    names = [n for n in names if not n.startswith("_")]
    found = {p.name: p.inferred_type_name for p in translators.PythonTranslator.inspect(cell)}
    untyped = [n for n in names if found.get(n, "None") == "None"]
    assert not untyped, f"parameters without a type papermill can read: {untyped}"


def test_injected_strings_become_the_declared_types():
    from typing import Optional, Union

    from functions.engine.config import ConfigError
    from functions.notebook import check_parameters

    namespace = {"__annotations__": {"freeze": bool, "percentages": Optional[list[float]],
                                     "repeats": Optional[Union[int, list[int]]], "overrides": dict,
                                     "variants": Optional[list[str]], "name": str}}
    namespace.update(freeze=True, percentages=None, repeats=None, overrides={}, variants=None, name="a")
    declared = set(namespace)
    namespace.update(freeze="false", percentages="[0.01, 0.1]", repeats="8", overrides='{"lr_fine_tune": 3e-4}',
                     variants="original,steps")
    check_parameters(namespace, declared)
    assert namespace["freeze"] is False and namespace["percentages"] == [0.01, 0.1]
    assert namespace["repeats"] == 8 and namespace["overrides"] == {"lr_fine_tune": 3e-4}
    assert namespace["variants"] == ["original", "steps"] and namespace["name"] == "a"
    namespace["freeze"] = "maybe"
    with pytest.raises(ConfigError, match="freeze"):
        check_parameters(namespace, declared)
