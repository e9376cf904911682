"""Notebook hygiene: one papermill parameters cell with typed parameters, python3 kernel, no absolute
paths, no stale papermill injected-parameters cells, every notebook as its template generates it and as
JupyterLab saves it, templates that are valid Python, one shared block of study parameters that
``study_config`` takes, misspelt or bad parameters fail with one line and papermill strings are converted.
(Every notebook is also executed under nbval in the smoke profile via pytest's testpaths.)"""
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
    namespace.update(freeze="false", percentages="[0.01, 0.1]", repeats="8", overrides='{"lr_fine_tune": 3e-4}',
                     variants="original,steps")
    params = check_parameters(namespace, injected={"freeze", "percentages", "repeats", "overrides", "variants"})
    assert namespace["freeze"] is False and namespace["percentages"] == [0.01, 0.1]
    assert namespace["repeats"] == 8 and namespace["overrides"] == {"lr_fine_tune": 3e-4}
    assert namespace["variants"] == ["original", "steps"] and namespace["name"] == "a"
    assert list(params) == ["freeze", "percentages", "repeats", "overrides", "variants", "name"]
    assert params["percentages"] == [0.01, 0.1]
    namespace["freeze"] = "maybe"
    with pytest.raises(ConfigError, match="freeze"):
        check_parameters(namespace, injected=set())


# ----------------------------------------------------------------------------- parameters (issues 20, 21)
def _parameters_cell(path: Path):
    nb = nbformat.read(path, as_version=4)
    return next(c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", []))


def _parameter_namespace(path: Path) -> dict:
    """What a kernel holds after running a notebook's parameters cell (with the imports it uses)."""
    from typing import Optional, Union

    from functions.engine.config import profile_from_env

    namespace = {"Optional": Optional, "Union": Union, "profile_from_env": profile_from_env,
                 "DATASET_SHAPES": {"MNIST": (1, 28, 28)}}  # an imported constant is no parameter
    exec(compile(_parameters_cell(path).source, str(path), "exec"), namespace)
    return namespace


STUDY_NOTEBOOKS = [p for p in NOTEBOOKS if "{{study_parameters}}" in (
    TEMPLATES[0].parent / f"{p.stem}.py").read_text(encoding="utf-8")]


def test_every_study_notebook_shares_one_parameter_block():
    """Issue 20: the study parameters are one block of the builder; every study notebook has it."""
    assert {p.stem for p in STUDY_NOTEBOOKS} == {"empirical_experiment", "truncation_experiment",
                                                  "clustering_experiment", "protocol_sensitivity",
                                                  "transfer_conditions", "surgical_finetuning", "what_transfers"}
    shared = ("profile: str", "data_root:", "results_dir:", "percentages:", "repeats:", "cuts:", "device:",
              "seed:", "source_dataset:", "target_dataset:", "class_split:", "pre_train_classes:",
              "fine_tune_classes:", "overrides:")
    for path in STUDY_NOTEBOOKS:
        source = _parameters_cell(path).source
        assert all(line in source for line in shared), path
        has_protocol = path.stem != "protocol_sensitivity"  # its variants set protocol and lr_grid
        assert ("protocol: Optional[str] = None" in source) == has_protocol, path
        assert ("lr_grid: Optional[list[float]] = None" in source) == has_protocol, path


@pytest.mark.parametrize("path", STUDY_NOTEBOOKS, ids=lambda p: str(p.relative_to(REPO)))
def test_study_config_takes_the_checked_parameters(path):
    """``params = check_parameters(globals())`` then ``study_config(params)``: every parameter named like a
    StudyConfig field reaches the config, a protocol typo is refused before anything runs."""
    from functions.engine.config import ConfigError
    from functions.notebook import check_parameters, study_config

    namespace = _parameter_namespace(path)
    namespace.update(profile="cpu", seed="3", percentages="[0.001, 0.01]")
    if "protocol" in namespace:
        namespace.update(protocol="original", lr_grid="[]")
    params = check_parameters(namespace, injected={"profile", "seed", "percentages", "protocol", "lr_grid"}
                              & set(namespace))
    assert "DATASET_SHAPES" not in params and not any(name.startswith("_") for name in params)
    cfg = study_config(params)
    assert cfg.seed == 3 and cfg.percentages == [0.001, 0.01]
    assert cfg.repeats == [16, 16]  # the cpu profile's rule for these fractions
    if "protocol" in params:
        assert cfg.protocol == "original" and cfg.lr_grid is None  # []: one learning rate, no tuning
        with pytest.raises(ConfigError, match=r"protocol 'realisitc' is unknown; allowed: \['original'"):
            study_config({**params, "protocol": "realisitc"})


def test_unknown_parameter_lists_only_parameters():
    from functions.notebook import ParameterError, check_parameters

    namespace = _parameter_namespace(REPO / "MNIST" / "empirical_experiment.ipynb")
    namespace["percentage"] = [0.1]
    with pytest.raises(ParameterError) as caught:
        check_parameters(namespace, injected={"percentage"})
    message = str(caught.value)
    allowed = message.split("allowed: ")[1]
    assert "['percentage'] (did you mean 'percentages'?)" in message
    assert "'percentages'" in allowed and "'protocol'" in allowed
    assert "DATASET_SHAPES" not in allowed and "_declared" not in allowed
    assert caught.value._render_traceback_() == [f"ParameterError: {message}"]  # one line in the kernel


def test_injected_names_come_from_papermills_cell():
    from functions.notebook import injected_names

    history = ["", "import os", 'profile: str = "cpu"', '# Parameters\npercentage = [0.1]\nprofile = "smoke"\n',
               "params = check_parameters(globals())"]
    assert injected_names({"_ih": history}) == {"percentage", "profile"}
    assert injected_names({}) == set()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: str(p.relative_to(REPO)))
def test_help_notebook_lists_parameters_only(path):
    """``papermill --help-notebook`` lists what the parameters cell assigns: no internal names."""
    translators = pytest.importorskip("papermill.translators")
    names = [p.name for p in translators.PythonTranslator.inspect(_parameters_cell(path))]
    assert names and not [n for n in names if n.startswith("_")], names
    if path in STUDY_NOTEBOOKS and path.stem != "protocol_sensitivity":
        assert {"protocol", "lr_grid", "percentages", "repeats"} <= set(names)


def test_bad_values_say_what_the_parameter_takes():
    from typing import Optional, Union

    from functions.notebook import ParameterError, coerce_parameter, study_config

    with pytest.raises(ParameterError, match=r"percentages: expected list\[float\] or None, got '0.5%' "
                                             r"\(fractions of the fine-tuning data in \(0, 1\]"):
        coerce_parameter("percentages", "0.5%", Optional[list[float]])
    with pytest.raises(ParameterError, match="one int for every fraction"):
        coerce_parameter("repeats", "many", Optional[Union[int, list[int]]])
    with pytest.raises(ParameterError, match=r"outside the allowed range \(0, 1\]"):
        study_config("cpu", percentages=[0.5, 50.0])
    with pytest.raises(ParameterError, match=r"repeats has 3 values but percentages has 2: pass one int"):
        study_config("cpu", percentages=[0.001, 0.01], repeats=[16, 16, 8])
    one = study_config("cpu", percentages=[0.001, 0.5], repeats=4)
    assert one.repeats == 4  # one value applies to whatever fractions are given
    assert study_config("cpu", percentages=[0.005, 0.5]).repeats == [16, 8]  # the profile's nearest fraction


@pytest.mark.parametrize("parameters, message", [
    ({"percentage": [0.1]}, "unknown notebook parameter"),
    ({"protocol": "realisitc"}, "protocol 'realisitc' is unknown"),
])
def test_bad_parameter_stops_papermill_with_one_line(tmp_path, parameters, message):
    """papermill shows the failed cell's error: our one-line message, no traceback through functions/."""
    papermill = pytest.importorskip("papermill")
    nb = REPO / "MNIST" / "empirical_experiment.ipynb"
    with pytest.raises(papermill.PapermillExecutionError, match=message) as caught:
        papermill.execute_notebook(str(nb), str(tmp_path / "out.ipynb"), cwd=str(tmp_path),
                                   parameters={"profile": "smoke", **parameters},
                                   progress_bar=False, kernel_name="python3")
    assert caught.value.ename == "ParameterError"
    assert len(caught.value.traceback) == 1 and message in caught.value.traceback[0]


def test_a_visualizations_notebook_runs_first_on_an_empty_results_folder(tmp_path):
    """Notebook tests do not depend on the order files run in: in the smoke profile a visualizations notebook
    makes the small grid its folder's experiment notebooks would have left (baseline, FR and FT)."""
    papermill = pytest.importorskip("papermill")
    results = tmp_path / "results"
    papermill.execute_notebook(str(REPO / "MNIST" / "visualizations.ipynb"), str(tmp_path / "out.ipynb"),
                               cwd=str(REPO / "MNIST"), parameters={"profile": "smoke", "results_dir": str(results)},
                               progress_bar=False, kernel_name="python3")
    from functions.analysis.results import load_results

    assert set(load_results(str(results)).condition) == {"baseline", "FR", "FT"}
    assert (results / "figures" / "box_by_cut.png").exists()


# ----------------------------------------------------------------------------- JupyterLab's format (issue 21)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: str(p.relative_to(REPO)))
def test_notebooks_are_stored_as_jupyterlab_saves_them(path):
    """Opening a notebook in JupyterLab and letting it autosave changes no byte: the server writes
    ``nbformat.write(nb)`` of what it read, and the metadata holds what JupyterLab sets on opening it."""
    import io

    text = path.read_text(encoding="utf-8")
    nb = nbformat.reads(text, as_version=nbformat.NO_CONVERT)
    saved = io.StringIO()
    nbformat.write(nb, saved, version=nbformat.NO_CONVERT)  # jupyter_server's FileContentsManager._save_notebook
    assert saved.getvalue() == text
    assert nb.metadata["kernelspec"] == {"display_name": "Python 3 (ipykernel)", "language": "python",
                                         "name": "python3"}
    assert nb.metadata["language_info"]["pygments_lexer"] == "ipython3"
    assert build_notebooks.format_problems(path) == []
    assert "papermill" not in nb.metadata and "widgets" not in nb.metadata  # nothing that changes per render


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: str(p.relative_to(REPO)))
def test_jupyter_servers_open_and_save_leave_the_bytes(tmp_path, path):
    """The server's own round trip (jupyter_server's FileContentsManager: get, then save the model it gave),
    with the metadata JupyterLab sets when the kernel starts (the kernelspec and ipykernel's language_info)."""
    contents = pytest.importorskip("jupyter_server.services.contents.filemanager")
    from ipykernel.ipkernel import IPythonKernel
    from jupyter_client.kernelspec import KernelSpecManager

    copy = tmp_path / path.name
    copy.write_bytes(path.read_bytes())
    manager = contents.FileContentsManager(root_dir=str(tmp_path))
    model = manager.get(path.name, content=True)
    spec = KernelSpecManager().get_kernel_spec("python3")
    model["content"]["metadata"]["kernelspec"] = {"display_name": spec.display_name, "language": spec.language,
                                                  "name": "python3"}
    info = dict(IPythonKernel.language_info)
    assert {k: v for k, v in info.items() if k != "version"} == \
        {k: v for k, v in build_notebooks.LANGUAGE_INFO.items() if k != "version"}
    assert build_notebooks.LANGUAGE_INFO["version"].startswith("3.11.")  # the project's Python (README)
    model["content"]["metadata"]["language_info"] = {**info, "version": build_notebooks.LANGUAGE_INFO["version"]}
    manager.save({"type": "notebook", "format": "json", "content": model["content"]}, path.name)
    assert copy.read_bytes() == path.read_bytes()


def test_a_rendered_notebook_is_normalised(tmp_path):
    """What papermill writes (run metadata, widget state, no final newline) becomes JupyterLab's format with
    the outputs kept; a second pass writes nothing."""
    nb = build_notebooks.build("example_visualizations", {})
    nb.metadata["papermill"] = {"duration": 1.5}
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    nb.metadata["kernelspec"]["display_name"] = "Python 3"
    cell = nb.cells[-1]
    cell.metadata["papermill"] = {"duration": 0.1}
    cell.metadata["execution"] = {"iopub.status.busy": "2026-01-01T00:00:00Z"}
    nb.cells[0].metadata["tags"] = []  # papermill gives every cell an empty tag list
    cell.outputs = [nbformat.v4.new_output("display_data", data={
        "text/plain": "Results explorer over 3 results folder(s)",
        build_notebooks.WIDGET_VIEW: {"model_id": "abc", "version_major": 2, "version_minor": 0}})]
    path = tmp_path / "nb.ipynb"
    path.write_text(nbformat.writes(nb), encoding="utf-8")  # no final newline, as papermill writes
    assert build_notebooks.format_problems(path)
    build_notebooks.strip_injected(path)
    assert build_notebooks.format_problems(path) == []
    again = nbformat.read(path, as_version=4)
    assert again.cells[-1].outputs[0]["data"] == {"text/plain": "Results explorer over 3 results folder(s)"}
    assert "tags" not in again.cells[0].metadata
    assert not build_notebooks.write_notebook(again, path)  # unchanged: not rewritten
