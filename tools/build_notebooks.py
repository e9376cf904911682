"""Write every committed notebook from its template in ``tools/notebook_templates/``.

Each template is a Python file in the jupytext "percent" format, so linters and editors see real code:

* ``# %% [markdown]`` starts a markdown cell; its lines are comments (``# text``, ``#`` for a blank line);
* ``# %%`` starts a code cell, ``# %% tags=["parameters"]`` one with tags (JSON list);
* in code cells a commented magic (``# %matplotlib inline``) becomes the magic again (jupytext's escape);
* lines before the first ``# %%`` are notes about the template, not part of the notebook;
* blank lines between cells separate them and are not part of either cell.

Folder-specific pieces are placeholders that keep the file valid Python: ``{{title}}`` inside markdown
lines, and a line ``# {{folder_parameters}}`` in the parameters cell, replaced by the folder's lines
(datasets, class split). ``TARGETS`` below says which notebook each template writes, with which values.

    python tools/build_notebooks.py           write notebooks without outputs; rendered notebooks
                                              (with outputs) get their sources updated in place, keeping
                                              the outputs of unchanged cells (re-render them afterwards)
    python tools/build_notebooks.py --check   exit 1 and list every notebook whose cell types, sources or
                                              tags differ from its template (outputs, execution counts,
                                              ids and other metadata are ignored)
    python tools/build_notebooks.py --force   rewrite rendered notebooks too, dropping their outputs
    python tools/build_notebooks.py --strip-injected NB.ipynb ...
                                              drop papermill's injected-parameters cells (after rendering)
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

REPO = Path(__file__).resolve().parents[1]
TEMPLATES = REPO / "tools" / "notebook_templates"

# ----------------------------------------------------------------------------- what goes where
# folder → (title, the parameters cell's lines that set the datasets and the class split)
FOLDERS = {
    "MNIST": ("MNIST digits 0–4 → 5–9", [
        'source_dataset: str = "MNIST"',
        'target_dataset: str = "MNIST"',
        'class_split: str = "regular"              # MNIST: "regular" (0–4 → 5–9)']),
    "FashionMNIST": ("FashionMNIST classes [0,1,2,3,4,6,8] → [5,7,9] (regular) or [0,1,2,4,6,7,9] → [3,5,8] (random)", [
        'source_dataset: str = "FashionMNIST"',
        'target_dataset: str = "FashionMNIST"',
        'class_split: str = "regular"              # "regular" or "random"']),
    "CIFAR": ("CIFAR-10 classes [0,1,8,9] → [2..7] (regular), the reverse, or [5..9] → [0..3] (random)", [
        'source_dataset: str = "CIFAR10"',
        'target_dataset: str = "CIFAR10"',
        'class_split: str = "regular"              # "regular", "reverse" or "random"']),
    "cross_domain": ("MNIST → FashionMNIST (or FashionMNIST → MNIST), all ten classes", [
        'source_dataset: str = "MNIST"             # swap the two for FashionMNIST → MNIST',
        'target_dataset: str = "FashionMNIST"',
        'class_split: str = "all"                  # cross-domain: all ten classes on both sides']),
}
# the protocol-sensitivity grid of cross_domain runs the other direction by default
FASHION_TO_MNIST = ("FashionMNIST → MNIST (or MNIST → FashionMNIST), all ten classes", [
    'source_dataset: str = "FashionMNIST"      # swap the two for MNIST → FashionMNIST',
    'target_dataset: str = "MNIST"',
    'class_split: str = "all"                  # cross-domain: all ten classes on both sides'])


def _values(title: str, lines: list[str]) -> dict[str, str | list[str]]:
    return {"title": title, "folder_parameters": lines}


PER_FOLDER = ("empirical_experiment", "truncation_experiment", "clustering_experiment", "visualizations")

# template name → {notebook path (relative to the repository): placeholder values}
TARGETS: dict[str, dict[str, dict]] = {
    **{name: {f"{folder}/{name}.ipynb": _values(*FOLDERS[folder]) for folder in FOLDERS}
       for name in PER_FOLDER},
    "protocol_sensitivity": {"MNIST/protocol_sensitivity.ipynb": _values(*FOLDERS["MNIST"]),
                             "cross_domain/protocol_sensitivity.ipynb": _values(*FASHION_TO_MNIST)},
    "example_visualizations": {"example_visualizations.ipynb": {}},
    "transfer_conditions": {"MNIST/transfer_conditions.ipynb": {}},
    "compact_model": {"MNIST/compact_model.ipynb": {}},
    "featuremap_experiment": {"MNIST/featuremap_experiment.ipynb": {}},
    "architecture_search": {"FashionMNIST/architecture_search.ipynb": {}},
    "surgical_finetuning": {"cross_domain/surgical_finetuning.ipynb": {}},
}


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
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


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
    """Write a generated notebook; a rendered one keeps its outputs (its sources are updated in place)."""
    label = path.relative_to(REPO)
    if not differences(expected, path):
        return
    path.parent.mkdir(exist_ok=True)
    if rendered(path) and not force:
        nb, stale = synced(expected, path)
        nbformat.write(nb, path)
        print(f"updated {label} in place, outputs kept" +
              (f" ({stale} changed cells show old outputs: re-render it)" if stale else ""))
        return
    nbformat.write(expected, path)
    print("wrote", label)


def check() -> int:
    """Print every notebook that differs from its template; the number of such notebooks."""
    bad = 0
    for name, path, values in targets():
        notes = differences(build(name, values), path)
        if notes:
            bad += 1
            print(f"{path.relative_to(REPO)} differs from tools/notebook_templates/{name}.py:", file=sys.stderr)
            for note in notes:
                print(f"    {note}", file=sys.stderr)
    if bad:
        print(f"{bad} notebook(s) differ from their templates: run python tools/build_notebooks.py",
              file=sys.stderr)
    return bad


def strip_injected(path: Path) -> int:
    """Drop papermill's ``injected-parameters`` cells from a rendered notebook (in place); how many."""
    nb = nbformat.read(path, as_version=4)
    kept = [c for c in nb.cells if "injected-parameters" not in c.get("metadata", {}).get("tags", [])]
    dropped = len(nb.cells) - len(kept)
    if dropped:
        nb.cells = kept
        nbformat.write(nb, path)
    return dropped


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
