"""Write the study notebooks of every dataset folder from one set of templates.

The notebooks differ only in their parameters (datasets, class split), so they are generated here rather
than copied by hand: change a template once, rerun ``python tools/build_notebooks.py``, and every folder
follows. The generated notebooks are ordinary notebooks: open them, run them, pass ``-p`` to papermill.
Notebooks that hold rendered results (visualizations) are only rewritten with ``--force``.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

REPO = Path(__file__).resolve().parents[1]

# folder → (title, parameter lines that set the datasets and the class split)
FOLDERS = {
    "MNIST": ("MNIST digits 0–4 → 5–9", [
        'source_dataset = "MNIST"', 'target_dataset = "MNIST"',
        'class_split = "regular"          # MNIST: "regular" (0–4 → 5–9)']),
    "FashionMNIST": ("FashionMNIST classes [0,1,2,3,4,6,8] → [5,7,9] (regular) or [0,1,2,4,6,7,9] → [3,5,8] (random)", [
        'source_dataset = "FashionMNIST"', 'target_dataset = "FashionMNIST"',
        'class_split = "regular"          # "regular" or "random"']),
    "CIFAR": ("CIFAR-10 classes [0,1,8,9] → [2..7] (regular), the reverse, or [5..9] → [0..3] (random)", [
        'source_dataset = "CIFAR10"', 'target_dataset = "CIFAR10"',
        'class_split = "regular"          # "regular", "reverse" or "random"']),
    "cross_domain": ("MNIST → FashionMNIST (or FashionMNIST → MNIST), all ten classes", [
        'source_dataset = "MNIST"         # swap the two for FashionMNIST → MNIST',
        'target_dataset = "FashionMNIST"',
        'class_split = "all"              # cross-domain: all ten classes on both sides']),
}

IMPORTS = """\
from functions.config import profile_from_env
from functions.experiments import Study
from functions.notebook import check_parameters, study_config
from functions.results import summary_table"""

COMMON_PARAMETERS = """\
profile = profile_from_env("cpu")  # smoke | cpu | paper; default from $TL_STUDY_PROFILE
data_root = None                   # None: $TL_STUDY_DATA, else ./data
results_dir = None                 # None: results/ (smoke runs: results/smoke/)
percentages = None                 # None: the profile's fractions, e.g. [0.001, 0.01, 0.1, 1.0]
cuts = None                        # None: every cut 0..depth
repeats = None                     # None: the profile's repeats (int or one per fraction)
device = "cpu"                     # "cpu", "cuda" or "auto"
seed = 0
{dataset_lines}
pre_train_classes = None           # None: from class_split
fine_tune_classes = None
{extra}
scheduler_address = ""             # "" runs here; "local" starts a LocalCluster; or "tcp://host:8786"
overrides = {{}}                   # any other StudyConfig field, e.g. {{"lr_fine_tune": 3e-4}}
_declared = set(globals())"""

MAKE_CONFIG = """\
check_parameters(globals(), _declared)
cfg = study_config(profile, overrides, data_root=data_root, results_dir=results_dir, percentages=percentages,
                   cuts=cuts, repeats=repeats, device=device, seed=seed, source_dataset=source_dataset,
                   target_dataset=target_dataset, class_split=class_split, pre_train_classes=pre_train_classes,
                   fine_tune_classes=fine_tune_classes{config_extra})
print(cfg.study_name(), "| condition", cfg.condition, "| profile", cfg.profile)"""

RUN_GRID = """\
study = Study(cfg)
pretrained = study.pretrained  # trained once, then loaded from pretrained_models/
print(f"pretrained test accuracy: {{study.pretrain_info.get('test_acc', float('nan')):.4f}}")
df = study.run({conditions}, executor=executor_for(scheduler_address))"""


def parameters_cell(folder: str, extra: str = "", config_extra: str = ""):
    source = COMMON_PARAMETERS.format(dataset_lines="\n".join(FOLDERS[folder][1]), extra=extra)
    cell = new_code_cell(source.replace("\n\n", "\n"))
    cell.metadata["tags"] = ["parameters"]
    return cell


def notebook(cells) -> nbformat.NotebookNode:
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def empirical(folder: str) -> nbformat.NotebookNode:
    title = FOLDERS[folder][0]
    return notebook([
        new_markdown_cell(
            f"# Layer-wise transfer: {title}\n\n"
            "**Question.** How much does keeping the first *k* pretrained conv blocks help when fine-tuning on "
            "new classes with little data, compared with training from scratch on the same subsets?\n\n"
            "A CNN is pretrained on the first class group; for each cut *k* the blocks `[0, k)` are kept "
            "(frozen when `freeze`), the blocks after the cut are re-initialised (`reinit`) or kept, the head "
            "is new. Every fraction × repeat uses one balanced subset shared by all cuts and the baseline "
            "(cut −1), so comparisons are paired. `freeze`/`reinit` select the condition: FR (default), F, "
            "UR, U. Results are appended run by run to `results/*.jsonl`: rerun the notebook to resume."),
        new_code_cell(IMPORTS + "\nfrom functions.notebook import executor_for"),
        parameters_cell(folder, extra="freeze = True                      # keep transferred blocks frozen\n"
                                      "reinit = True                      # re-initialise blocks after the cut"),
        new_code_cell(MAKE_CONFIG.format(config_extra=", freeze=freeze, reinit=reinit")),
        new_code_cell(RUN_GRID.format(conditions='("baseline", cfg.condition)')),
        new_markdown_cell("Median test accuracy per fraction (rows) and arm (columns); the baseline is "
                          "training from scratch on the same subset."),
        new_code_cell("summary_table(df).round(4)"),
        new_code_cell("paths = study.export_original()  # baselines_*.json / cuts_*.json in the original format\n"
                      "print(study.store.path, *paths, sep='\\n')"),
    ])


def truncation(folder: str) -> nbformat.NotebookNode:
    title = FOLDERS[folder][0]
    return notebook([
        new_markdown_cell(
            f"# Truncation vs re-initialisation: {title}\n\n"
            "**Question.** Are the blocks after the cut worth having at all? Truncation (FT) removes them and "
            "puts the new head directly on the frozen block *k − 1*; FR keeps the same number of blocks but "
            "re-initialises and retrains them. Both run on the same paired subsets as the baseline."),
        new_code_cell(IMPORTS + "\nfrom functions.notebook import executor_for\nfrom functions import stats"),
        parameters_cell(folder),
        new_code_cell(MAKE_CONFIG.format(config_extra="")),
        new_code_cell(RUN_GRID.format(conditions='("baseline", "FR", "FT")')),
        new_markdown_cell("Median test accuracy: truncated (FT) and re-initialised (FR) side by side."),
        new_code_cell("df['arm'] = [a if c == 'baseline' else f'{c} k={k}' for a, c, k in "
                      "zip(df['arm'], df['condition'], df['cut'])]\n"
                      "summary_table(df).round(4).T"),
        new_markdown_cell("Paired Wilcoxon tests of FT against FR at the same cut (Holm-corrected within "
                          "each fraction)."),
        new_code_cell("tests = stats.paired_tests(df, by=('fraction',))\n"
                      "same_cut = tests['arm_a'].str.split('=').str[-1] == tests['arm_b'].str.split('=').str[-1]\n"
                      "tests[same_cut & tests['arm_a'].str.startswith(('FR', 'FT'))]"
                      "[['fraction', 'arm_a', 'arm_b', 'n_pairs', 'median_diff', 'p_holm', 'significant', "
                      "'warning']].round(4)"),
        new_code_cell("for condition in ('FR', 'FT'):\n"
                      "    print(*study.export_original(condition=condition), sep='\\n')"),
    ])


BUILDERS = {"empirical_experiment": empirical, "truncation_experiment": truncation}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--force", action="store_true", help="also rewrite notebooks with rendered results")
    args = parser.parse_args()
    for folder in FOLDERS:
        for name, build in BUILDERS.items():
            path = REPO / folder / f"{name}.ipynb"
            path.parent.mkdir(exist_ok=True)
            nbformat.write(build(folder), path)
            print("wrote", path.relative_to(REPO))


if __name__ == "__main__":
    main()
