"""Write every committed notebook from its template in ``tools/notebook_templates/``.

Each template is a Python file in the jupytext "percent" format, so linters and editors see real code:

* ``# %% [markdown]`` starts a markdown cell; its lines are comments (``# text``, ``#`` for a blank line);
* ``# %%`` starts a code cell, ``# %% tags=["parameters"]`` one with tags (JSON list);
* in code cells a commented magic (``# %matplotlib inline``) becomes the magic again (jupytext's escape);
* lines before the first ``# %%`` are notes about the template, not part of the notebook;
* blank lines between cells separate them and are not part of either cell.

Shared and folder-specific pieces are placeholders that keep the file valid Python: ``{{title}}`` inside
markdown lines, and a line ``# {{study_parameters}}`` in the parameters cell of every study notebook,
replaced by the one shared block of study parameters (:func:`study_parameters`: profile, data root,
results folder, fractions, repeats, cuts, protocol, lr grid, device, seed, the folder's datasets and class
split, classes, overrides) — a new study parameter is one line there. ``TARGETS`` below says which notebook
each template writes, with which values.

Notebooks are written exactly as JupyterLab saves them (``nbformat.write``: JSON with one space of indent,
keys sorted, a final newline; the kernelspec and language_info ipykernel reports), so opening one and
letting JupyterLab autosave changes no byte. A rendered notebook (with outputs) is stored without what
changes on every render but the outputs: papermill's run metadata and timestamps, and saved widget state.

    python tools/build_notebooks.py           write notebooks without outputs; rendered notebooks
                                              (with outputs) get their sources updated in place, keeping
                                              the outputs of unchanged cells (re-render them afterwards)
    python tools/build_notebooks.py --check   exit 1 and list every notebook whose cell types, sources or
                                              tags differ from its template (outputs, execution counts and
                                              ids are ignored), or that is not stored in JupyterLab's format
    python tools/build_notebooks.py --force   rewrite rendered notebooks too, dropping their outputs
    python tools/build_notebooks.py --strip-injected NB.ipynb ...
                                              after rendering: drop papermill's injected-parameters cells,
                                              run metadata and widget state; write in JupyterLab's format
"""
from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from functions.engine.datasets import dataset_spec, splits_title, study_title

REPO = Path(__file__).resolve().parents[1]
TEMPLATES = REPO / "tools" / "notebook_templates"

# ----------------------------------------------------------------------------- what goes where
# folder → (title, the parameters cell's lines that set the datasets and the class split), from the
# dataset registry (functions.engine.datasets): a new dataset's folder is one more entry here.
def _one_dataset(name: str) -> tuple[str, list[str]]:
    """(title, parameter lines) of a folder that splits one dataset's classes, from its record."""
    splits = [f'"{s}"' for s in dataset_spec(name).class_splits]
    choices = ", ".join(splits[:-1]) + f" or {splits[-1]}" if len(splits) > 1 else splits[0]
    first = next(iter(dataset_spec(name).class_splits))
    return splits_title(name), [f'source_dataset: str = "{name}"', f'target_dataset: str = "{name}"',
                                f'class_split: str = "{first}"              # {choices}']


def _cross(source: str, target: str) -> tuple[str, list[str]]:
    """(title, parameter lines) of a cross-domain folder: every class of both datasets."""
    return (f"{study_title(source, target)} (or the other way round)", [
        f'source_dataset: str = "{source}"  # swap the two for {target} → {source}',
        f'target_dataset: str = "{target}"',
        'class_split: str = "all"                  # cross-domain: all classes on both sides'])


FOLDERS = {"MNIST": _one_dataset("MNIST"), "FashionMNIST": _one_dataset("FashionMNIST"),
           "CIFAR": _one_dataset("CIFAR10"), "cross_domain": _cross("MNIST", "FashionMNIST")}
# the protocol-sensitivity and what-transfers grids of cross_domain run the other direction by default
FASHION_TO_MNIST = _cross("FashionMNIST", "MNIST")


def _line(code: str, comment: str) -> str:
    """A parameter line with its comment in the column every parameters cell uses."""
    code = code.rstrip()
    return f"{code:<47} # {comment.strip()}" if len(code) < 47 else f"{code}  # {comment.strip()}"


def study_parameters(folder_lines: list[str], results: str = "results", protocol: bool = True,
                     percentages: str = "the profile's", repeats: str = "the profile's") -> list[str]:
    """The parameters every study notebook shares, as lines of its parameters cell: ``functions.notebook.
    study_config`` turns them into the StudyConfig (a parameter named like a config field sets that field).
    ``protocol=False`` leaves out ``protocol``/``lr_grid`` (a notebook that runs several protocols)."""
    lines = [
        _line('profile: str = profile_from_env("cpu")', "smoke | cpu | paper; default from $TL_STUDY_PROFILE"),
        _line("data_root: Optional[str] = None", "None: $TL_STUDY_DATA, else ./data"),
        _line("results_dir: Optional[str] = None", f"None: {results}/ (smoke runs: {results}/smoke/)"),
        _line("percentages: Optional[list[float]] = None", f"fractions in (0, 1]; None: {percentages}"),
        _line("repeats: Optional[Union[int, list[int]]] = None", f"an int, or one per fraction; None: {repeats}"),
        _line("cuts: Optional[list[int]] = None", "None: every cut 0..number of blocks"),
    ]
    if protocol:
        lines += [
            _line("protocol: Optional[str] = None", '"original", "steps" or "realistic"; None: the profile\'s'),
            _line("lr_grid: Optional[list[float]] = None", "lr each arm picks from; None: the profile's; []: one lr"),
        ]
    lines += [
        _line('device: str = "cpu"', '"cpu", "cuda" or "auto"'),
        "seed: int = 0",
        *(_line(*line.split("  # ", 1)) if "  # " in line else line for line in folder_lines),
        _line("pre_train_classes: Optional[list[int]] = None", "None: from class_split"),
        _line("fine_tune_classes: Optional[list[int]] = None", "None: from class_split"),
        _line("overrides: dict = {}", 'any other StudyConfig field, e.g. {"lr_fine_tune": 3e-4}'),
    ]
    return lines


def _values(title: str, lines: list[str], **options) -> dict[str, str | list[str]]:
    return {"title": title, "study_parameters": study_parameters(lines, **options)}


def setting_line(folder_lines: list[str]) -> str:
    """``setting = dict(...)`` of a folder's dataset parameter lines (``name: type = value  # comment``)."""
    pairs = [re.match(r"(\w+): \w+ = (\S+)", line).groups() for line in folder_lines]
    return "setting = dict(" + ", ".join(f"{name}={value}" for name, value in pairs) + ")"


PER_FOLDER = ("empirical_experiment", "truncation_experiment", "clustering_experiment")

# template name → {notebook path (relative to the repository): placeholder values}
TARGETS: dict[str, dict[str, dict]] = {
    **{name: {f"{folder}/{name}.ipynb": _values(*FOLDERS[folder]) for folder in FOLDERS}
       for name in PER_FOLDER},
    "visualizations": {f"{folder}/visualizations.ipynb": {"title": FOLDERS[folder][0],
                                                           "smoke_setting": setting_line(FOLDERS[folder][1])}
                       for folder in FOLDERS},
    "protocol_sensitivity": {
        path: _values(title, lines, results="results/protocols", protocol=False,
                      percentages="[0.001, 0.01, 0.1] (smoke: the profile's)", repeats="16 below 5 %, else 8")
        for path, (title, lines) in (("MNIST/protocol_sensitivity.ipynb", FOLDERS["MNIST"]),
                                     ("cross_domain/protocol_sensitivity.ipynb", FASHION_TO_MNIST))},
    "example_visualizations": {"example_visualizations.ipynb": {}},
    "transfer_conditions": {"MNIST/transfer_conditions.ipynb": {
        "study_parameters": study_parameters(FOLDERS["MNIST"][1], results="results/conditions")}},
    "compact_model": {"MNIST/compact_model.ipynb": {}},
    "featuremap_experiment": {"MNIST/featuremap_experiment.ipynb": {}},
    "architecture_search": {"FashionMNIST/architecture_search.ipynb": {}},
    "what_transfers": {"MNIST/what_transfers.ipynb": _values(*FOLDERS["MNIST"]),
                       "cross_domain/what_transfers.ipynb": _values(*FASHION_TO_MNIST)},
    "surgical_finetuning": {"cross_domain/surgical_finetuning.ipynb": {
        "study_parameters": study_parameters(FOLDERS["cross_domain"][1], results="results/surgical")}},
}


# ----------------------------------------------------------------------------- JupyterLab's format
# What JupyterLab (4, with ipykernel) puts into a notebook's metadata when it opens one and its kernel
# starts: the kernelspec's display name and ipykernel's language_info. A notebook that already holds
# exactly these is not modified by opening it. The Python version is the project's (README: Python 3.11).
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
LANGUAGE_INFO = {"codemirror_mode": {"name": "ipython", "version": 3}, "file_extension": ".py",
                 "mimetype": "text/x-python", "name": "python", "nbconvert_exporter": "python",
                 "pygments_lexer": "ipython3", "version": "3.11.7"}
# Run records that change on every render while the outputs do not: papermill's parameters, paths and
# timestamps, execution timestamps, and the widget state nbclient saves (random model ids; JupyterLab does
# not save it by default). A widget's view refers to that state, so it goes too: its text/plain stays.
RUN_METADATA = ("papermill", "widgets")
CELL_RUN_METADATA = ("papermill", "execution")
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def jupyterlab_text(nb: nbformat.NotebookNode) -> str:
    """The file JupyterLab's server writes for ``nb`` (``nbformat.write``: indent 1, sorted keys, final
    newline)."""
    text = nbformat.writes(nb, version=nbformat.NO_CONVERT)
    return text if text.endswith("\n") else text + "\n"


def normalized(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """``nb`` as this repository stores it: JupyterLab's kernelspec and language_info, no papermill
    injected-parameters cells, no run metadata (:data:`RUN_METADATA`) or empty tag lists, no widget views;
    outputs kept."""
    nb.metadata = {k: v for k, v in nb.metadata.items() if k not in RUN_METADATA}
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata["language_info"] = json.loads(json.dumps(LANGUAGE_INFO))
    nb.cells = [c for c in nb.cells if "injected-parameters" not in c.get("metadata", {}).get("tags", [])]
    for cell in nb.cells:
        # papermill gives every cell an empty tag list; the templates write none (a re-render changes no byte)
        cell.metadata = {k: v for k, v in cell.get("metadata", {}).items()
                         if k not in CELL_RUN_METADATA and not (k == "tags" and v == [])}
        for output in cell.get("outputs", []):
            if WIDGET_VIEW in output.get("data", {}):
                output["data"] = {k: v for k, v in output["data"].items() if k != WIDGET_VIEW}
    return nbformat.from_dict(nb)


def format_problems(path: Path) -> list[str]:
    """Why the file at ``path`` is not what JupyterLab would save for it (empty: it is)."""
    text = path.read_text(encoding="utf-8")
    nb = nbformat.reads(text, as_version=nbformat.NO_CONVERT)
    problems = []
    if nb.metadata.get("kernelspec") != KERNELSPEC or nb.metadata.get("language_info") != LANGUAGE_INFO:
        problems.append("kernelspec or language_info differ from what JupyterLab writes on opening it")
    run = [k for k in RUN_METADATA if k in nb.metadata] + sorted(
        {k for c in nb.cells for k in c.get("metadata", {}) if k in CELL_RUN_METADATA})
    if run:
        problems.append(f"run metadata that changes on every render: {run}")
    if text != jupyterlab_text(nb):
        problems.append("bytes differ from nbformat.write (JSON indent 1, sorted keys, final newline)")
    return problems


def write_notebook(nb: nbformat.NotebookNode, path: Path) -> bool:
    """Write ``nb`` in JupyterLab's format unless the file holds exactly that already; whether it wrote."""
    text = jupyterlab_text(nb)
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    path.write_text(text, encoding="utf-8")
    return True


# ----------------------------------------------------------------------------- the percent format
class TemplateError(ValueError):
    """A template that does not follow the percent format, or a placeholder without a value."""


_MARKER = re.compile(r"^# %%(?P<rest>.*)$")
_HEADER = re.compile(r"^\s*(?:\[(?P<kind>markdown|md)\])?\s*(?:tags=(?P<tags>\[.*\]))?\s*$")
_MAGIC = re.compile(r"^# ?(%{1,2}(?!%)\w.*)$")  # "# %matplotlib inline" → "%matplotlib inline"
_PLACEHOLDER_LINE = re.compile(r"^(?P<indent>\s*)# \{\{(?P<name>\w+)\}\}\s*$")
_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


def parse_percent(text: str, origin: str = "<template>") -> list[dict]:
    """Cells of a percent-format script: ``[{"cell_type", "source", "tags"}, ...]``."""
    cells: list[dict] = []
    current: dict | None = None
    for number, line in enumerate(text.splitlines(), 1):
        marker = _MARKER.match(line)
        if marker:
            header = _HEADER.match(marker["rest"])
            if header is None:
                raise TemplateError(f"{origin}:{number}: cannot read the cell marker {line!r} "
                                    '(allowed: "# %%", "# %% [markdown]", \'# %% tags=["parameters"]\')')
            tags = json.loads(header["tags"]) if header["tags"] else []
            if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
                raise TemplateError(f"{origin}:{number}: tags must be a JSON list of strings")
            current = {"cell_type": "markdown" if header["kind"] else "code", "lines": [], "tags": tags,
                       "line": number}
            cells.append(current)
        elif current is not None:
            current["lines"].append(line)
    out = []
    for cell in cells:
        lines = cell["lines"]
        while lines and not lines[-1].strip():
            lines.pop()
        while lines and not lines[0].strip():
            lines.pop(0)
        if cell["cell_type"] == "markdown":
            source = []
            for offset, line in enumerate(lines, 1):
                if line.strip() and not line.startswith("#"):
                    raise TemplateError(f"{origin}:{cell['line'] + offset}: a markdown cell holds comment "
                                        f"lines only, got {line!r}")
                source.append(line[2:] if line.startswith("# ") else line[1:])
        else:
            source = [_unescape_magic(line) for line in lines]
        out.append({"cell_type": cell["cell_type"], "source": "\n".join(source), "tags": cell["tags"]})
    return out


def _unescape_magic(line: str) -> str:
    match = _MAGIC.match(line)
    return match.group(1) if match else line


def substitute(source: str, values: dict, origin: str, cell_type: str = "code") -> str:
    """Fill the placeholders of one cell: in code, a line ``# {{name}}`` by the value's lines; elsewhere
    ``{{name}}`` by the value's text."""
    lines = []
    for line in source.split("\n"):
        block = _PLACEHOLDER_LINE.match(line) if cell_type == "code" else None
        if block:
            value = _value(values, block["name"], origin)
            lines.extend(block["indent"] + v for v in ([value] if isinstance(value, str) else value))
            continue
        lines.append(_PLACEHOLDER.sub(lambda m: _text_value(values, m.group(1), origin), line))
    return "\n".join(lines)


def _value(values: dict, name: str, origin: str):
    if name not in values:
        raise TemplateError(f"{origin}: no value for the placeholder {{{{{name}}}}}; given: {sorted(values)}")
    return values[name]


def _text_value(values: dict, name: str, origin: str) -> str:
    value = _value(values, name, origin)
    if not isinstance(value, str):
        raise TemplateError(f"{origin}: {{{{{name}}}}} holds lines: put it on a line of its own ('# {{{{{name}}}}}')")
    return value


def template_path(name: str) -> Path:
    return TEMPLATES / f"{name}.py"


def build(name: str, values: dict) -> nbformat.NotebookNode:
    """The notebook a template generates with the given placeholder values."""
    path = template_path(name)
    origin = str(path.relative_to(REPO))
    cells = []
    for i, cell in enumerate(parse_percent(path.read_text(encoding="utf-8"), origin)):
        source = substitute(cell["source"], values, origin, cell["cell_type"])
        new = new_markdown_cell(source) if cell["cell_type"] == "markdown" else new_code_cell(source)
        if cell["tags"]:
            new.metadata["tags"] = list(cell["tags"])
        new.id = f"cell-{i:02d}"  # stable ids: rebuilding an unchanged notebook leaves git diff empty
        cells.append(new)
    return normalized(new_notebook(cells=cells))


def targets() -> list[tuple[str, Path, dict]]:
    """(template name, notebook path, placeholder values) of every generated notebook."""
    return [(name, REPO / rel, values) for name, paths in TARGETS.items() for rel, values in paths.items()]


# ----------------------------------------------------------------------------- comparing and writing
def cell_key(cell) -> tuple[str, str, tuple[str, ...]]:
    """What --check compares: type, source and tags (not outputs, counts, ids or other metadata)."""
    return cell.cell_type, cell.source, tuple(cell.get("metadata", {}).get("tags", []))


def differences(expected: nbformat.NotebookNode, path: Path) -> list[str]:
    """Human-readable differences between a committed notebook and what its template generates."""
    if not path.exists():
        return ["missing"]
    actual = nbformat.read(path, as_version=4)
    want, have = [cell_key(c) for c in expected.cells], [cell_key(c) for c in actual.cells]
    notes = []
    for op, a0, a1, b0, b1 in difflib.SequenceMatcher(a=have, b=want, autojunk=False).get_opcodes():
        if op == "replace" and a1 - a0 == b1 - b0:
            for i, j in zip(range(a0, a1), range(b0, b1)):
                what = [field for field, x, y in zip(("type", "source", "tags"), have[i], want[j]) if x != y]
                verb = "differs" if len(what) == 1 else "differ"
                notes.append(f"cell {i}: {' and '.join(what)} {verb} from template cell {j}")
        elif op in ("replace", "delete"):
            notes.append(f"cells {a0}–{a1 - 1} differ from the template" + (
                f" (template cells {b0}–{b1 - 1})" if b1 > b0 else " (not in the template)"))
        elif op == "insert":
            notes.append(f"template cells {b0}–{b1 - 1} are missing before cell {a0}")
    return notes


def rendered(path: Path) -> bool:
    """True when a notebook on disk carries outputs (rendered from shipped results)."""
    if not path.exists():
        return False
    nb = nbformat.read(path, as_version=4)
    return any(cell.get("outputs") for cell in nb.cells if cell.cell_type == "code")


def synced(expected: nbformat.NotebookNode, path: Path) -> tuple[nbformat.NotebookNode, int]:
    """The committed notebook with the template's cells, keeping what outputs it can: an unchanged cell keeps
    its outputs and id; among changed cells, each keeps the outputs of the committed cell of the same type at
    the same place (now possibly stale); other cells come without outputs; papermill's injected-parameters
    cells are dropped. Returns (notebook, number of kept cells whose source changed and that have outputs)."""
    actual = nbformat.read(path, as_version=4)
    old = [c for c in actual.cells if "injected-parameters" not in c.get("metadata", {}).get("tags", [])]
    have, want = [cell_key(c) for c in old], [cell_key(c) for c in expected.cells]
    partner: dict[int, int] = {}  # template cell → committed cell whose outputs it keeps
    for op, a0, a1, b0, b1 in difflib.SequenceMatcher(a=have, b=want, autojunk=False).get_opcodes():
        if op == "equal":
            partner.update(zip(range(b0, b1), range(a0, a1)))
        elif op == "replace":
            types = difflib.SequenceMatcher(a=[have[i][0] for i in range(a0, a1)],
                                            b=[want[j][0] for j in range(b0, b1)], autojunk=False)
            for block in types.get_matching_blocks():
                partner.update((b0 + block.b + n, a0 + block.a + n) for n in range(block.size))
    cells, stale, ids = [], 0, {c.get("id") for c in old}
    for j, new in enumerate(expected.cells):
        if j in partner:
            cell = old[partner[j]]
            stale += cell_key(cell) != want[j] and bool(cell.get("outputs"))
            cell.source = new.source
            tags = new.metadata.get("tags")
            if tags:
                cell.metadata["tags"] = list(tags)
            else:
                cell.metadata.pop("tags", None)
        else:
            cell = new
            if cell.id in ids:
                cell.id = f"{cell.id}-{len(ids)}"
        ids.add(cell.id)
        cells.append(cell)
    actual.cells = cells
    return actual, stale


def write(expected: nbformat.NotebookNode, path: Path, force: bool) -> None:
    """Write a generated notebook; a rendered one keeps its outputs (its sources are updated in place).
    Either is stored in JupyterLab's format; a file that is already right is not touched."""
    label = path.relative_to(REPO)
    path.parent.mkdir(exist_ok=True)
    if rendered(path) and not force:
        nb, stale = synced(expected, path)
        if write_notebook(normalized(nb), path):
            print(f"updated {label} in place, outputs kept" +
                  (f" ({stale} changed cells show old outputs: re-render it)" if stale else ""))
        return
    if write_notebook(expected, path):
        print("wrote", label)


def check() -> int:
    """Print every notebook that differs from its template; the number of such notebooks."""
    bad = 0
    for name, path, values in targets():
        notes = differences(build(name, values), path)
        if path.exists():
            notes += format_problems(path)
        if notes:
            bad += 1
            print(f"{path.relative_to(REPO)} differs from tools/notebook_templates/{name}.py:", file=sys.stderr)
            for note in notes:
                print(f"    {note}", file=sys.stderr)
    if bad:
        print(f"{bad} notebook(s) differ from their templates or JupyterLab's format: run python "
              "tools/build_notebooks.py", file=sys.stderr)
    return bad


def strip_injected(path: Path) -> int:
    """Drop papermill's ``injected-parameters`` cells, run metadata and widget state from a rendered notebook
    and store it in JupyterLab's format (in place, :func:`normalized`); how many cells were dropped."""
    nb = nbformat.read(path, as_version=4)
    before = len(nb.cells)
    nb = normalized(nb)
    write_notebook(nb, path)
    return before - len(nb.cells)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when a notebook differs")
    parser.add_argument("--force", action="store_true", help="also rewrite notebooks with rendered results")
    parser.add_argument("--strip-injected", nargs="+", metavar="NOTEBOOK", type=Path,
                        help="only drop papermill's injected-parameters cells from these notebooks, in place "
                             "(a rendered copy must not override the defaults when opened in JupyterLab)")
    args = parser.parse_args(argv)
    if args.strip_injected:
        for path in args.strip_injected:
            print(f"{path}: {strip_injected(path)} injected-parameters cell(s) dropped")
        return 0
    if args.check:
        return 1 if check() else 0
    for name, path, values in targets():
        write(build(name, values), path, args.force)
    return 0


if __name__ == "__main__":
    sys.exit(main())
