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
from functions.analysis.results import summary_table
from functions.engine.config import profile_from_env
from functions.engine.study import Study
from functions.notebook import check_parameters, study_config"""

COMMON_PARAMETERS = """\
profile = profile_from_env("cpu")  # smoke | cpu | paper; default from $TL_STUDY_PROFILE
data_root = None                   # None: $TL_STUDY_DATA, else ./data
results_dir = None                 # None: results/ (smoke runs: results/smoke/)
percentages = None                 # None: the profile's fractions, e.g. [0.001, 0.01, 0.1]
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
    for i, cell in enumerate(nb.cells):
        cell.id = f"cell-{i:02d}"  # stable ids: rebuilding an unchanged notebook leaves git diff empty
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
        new_code_cell("paths = study.export_original()  # original_format/: baselines_*.json, cuts_*.json\n"
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
        new_code_cell(IMPORTS + "\nfrom functions.notebook import executor_for\nfrom functions.analysis import stats"),
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


def clustering(folder: str) -> nbformat.NotebookNode:
    title = FOLDERS[folder][0]
    return notebook([
        new_markdown_cell(
            f"# Where does class structure appear? Layer-wise clustering: {title}\n\n"
            "**Question.** At which block do the activations of the *fine-tuning* classes separate into "
            "clusters — before any fine-tuning (pretrained network) and after fine-tuning the whole network? "
            "Each block's activations (global average pooled) are clustered with agglomerative (cosine, "
            "average linkage) and k-means clustering, k = number of classes, over fractions × repeats of the "
            "test split; metrics: ARI, Hungarian-matched accuracy, pairwise precision/recall. Beyond the "
            "original study: a linear probe per layer, and linear CKA between the pretrained and the "
            "fine-tuned network."),
        new_code_cell(IMPORTS + "\nfrom functions.analysis import clustering, figures\n"
                      "from functions.engine.conditions import RunSpec\nimport pandas as pd"),
        parameters_cell(folder, extra=(
            "cluster_fractions = None           # None: the profile's fractions (of the test split)\n"
            "cluster_repeats = 3\n"
            "methods = [\"agglomerative\", \"kmeans\"]\n"
            "per_channel = False                # also cluster each channel's maps (slow on big models)\n"
            "max_samples = 2000                 # cap on clustered images per subset (agglomerative is O(n²))\n"
            "finetune_fraction = 0.1            # data used to fine-tune the whole network for comparison")),
        new_code_cell(MAKE_CONFIG.format(config_extra="")),
        new_code_cell("study = Study(cfg)\npretrained = study.pretrained\n"
                      "# fine-tune the whole pretrained network (condition U at cut = depth) on one subset\n"
                      "spec = RunSpec(\"U\", finetune_fraction, cfg.depth, 0)\n"
                      "finetuned, result = study.train(spec)\n"
                      "print(f\"fine-tuned test accuracy: {result['test_acc']:.4f}\")"),
        new_code_cell("x, y = study.target.x_test, study.target.y_test\n"
                      "fractions = cluster_fractions or cfg.percentages\n"
                      "frames = []\n"
                      "for name, net in ((\"pretrained\", pretrained), (\"finetuned\", finetuned)):\n"
                      "    part = clustering.cluster_study(net, x, y, fractions, cluster_repeats, methods=methods,\n"
                      "                                    per_channel=per_channel, seed=cfg.seed, max_samples=max_samples,\n"
                      "                                    dataset=cfg.target_dataset, split=\"test\")\n"
                      "    frames.append(part.assign(model=name))\n"
                      "cdf = pd.concat(frames, ignore_index=True)\n"
                      "cdf.groupby([\"model\", \"method\", \"layer\"], sort=False)[[\"ari\", \"accuracy\"]].median().round(3)"),
        new_code_cell("figures.use_style()\n"
                      "fig = figures.box_clustering(cdf[(cdf.model == \"pretrained\") & (cdf.method == \"agglomerative\")], metric=\"ari\")"),
        new_markdown_cell("Linear probe accuracy per layer (held-out 30 %) and CKA similarity of each layer "
                          "before vs after fine-tuning."),
        new_code_cell("probes = pd.concat([clustering.probe_study(net, x, y, seed=cfg.seed).assign(model=name)\n"
                      "                    for name, net in ((\"pretrained\", pretrained), (\"finetuned\", finetuned))])\n"
                      "cka = clustering.cka_by_layer(pretrained, finetuned, x[:max_samples])\n"
                      "probes.pivot(index=\"layer\", columns=\"model\", values=\"accuracy\").join(cka.set_index(\"layer\")).round(3)"),
        new_code_cell("import os\nout = os.path.join(cfg.results_dir, \"clustering\")\nos.makedirs(out, exist_ok=True)\n"
                      "cdf.to_csv(os.path.join(out, f\"clustering_{cfg.target_dataset}.csv\"), index=False)\n"
                      "probes.to_csv(os.path.join(out, f\"probes_{cfg.target_dataset}.csv\"), index=False)\n"
                      "cka.to_csv(os.path.join(out, f\"cka_{cfg.target_dataset}.csv\"), index=False)\nprint(out)"),
    ])


VIS_IMPORTS = """\
import glob
import os

import torch

from functions.analysis import diagnostics, figures, stats
from functions.analysis.results import load_results, with_settings
from functions.analysis.tables import to_latex, to_markdown
from functions.engine.config import StudyConfig, profile_from_env
from functions.engine.networks import load_state, new_model
from functions.notebook import check_parameters, default_results_dir"""


def visualizations(folder: str) -> nbformat.NotebookNode:
    title = FOLDERS[folder][0]
    return notebook([
        new_markdown_cell(
            f"# Results: {title}\n\n"
            "Every figure of this folder's results, with the statistics behind them: paired Wilcoxon tests "
            "between all arms (cuts and baseline) within each fraction, paired by repeat, Holm-corrected; rank "
            "groups (arms that do not differ significantly share a letter); bootstrap 95 % CIs of medians; the "
            "median paired difference to the baseline, its p-value Holm-corrected over the cut-vs-baseline "
            "comparisons of that fraction. Rerun after adding results: the tables and figures follow."),
        new_code_cell(VIS_IMPORTS),
        _vis_parameters(),
        new_code_cell("check_parameters(globals(), _declared)\n"
                      "results_dir = results_dir or default_results_dir(profile)\n"
                      "figures_dir = figures_dir or os.path.join(results_dir, \"figures\")\n"
                      "if not glob.glob(os.path.join(results_dir, \"*.json*\")):\n"
                      "    raise FileNotFoundError(f\"no results in {results_dir!r}: run empirical_experiment.ipynb \"\n"
                      "                            f\"(and truncation_experiment.ipynb) with profile={profile!r} first\")\n"
                      "df = load_results(results_dir)  # the stores (exports in original_format/ are not read)\n"
                      "if condition:\n"
                      "    df = df[df.condition.isin([\"baseline\", condition])]\n"
                      "print(len(df), \"runs;\", \", \".join(sorted(df.study.unique())), \"; conditions:\", sorted(df.condition.unique()))"),
        new_markdown_cell("## Statistics per fraction\nMedian test accuracy with bootstrap CI, rank group, and "
                          "the paired difference to the baseline (Holm-corrected p). A warning column says when "
                          "the number of paired repeats makes significance impossible."),
        new_code_cell("# Each condition gets its own copy of the baseline (a 'setting'): FR and truncation share one\n"
                      "# baseline, and their 'cut 2' rows must not be paired with each other.\n"
                      "summary = stats.summarize(with_settings(df), metric=metric, alpha=alpha,\n"
                      "                          by=(\"study\", \"setting\", \"fraction\"), seed=0)\nsummary.round(4)"),
        new_code_cell("figures.use_style()\nfig = figures.box_by_cut(df, metric=metric)\n"
                      "figures.save_figure(fig, os.path.join(figures_dir, \"box_by_cut\"))"),
        new_code_cell("fig = figures.median_lines(df, metric=metric)\n"
                      "figures.save_figure(fig, os.path.join(figures_dir, \"median_lines\"))"),
        new_code_cell("fig = figures.diff_to_baseline(df, metric=metric)\n"
                      "figures.save_figure(fig, os.path.join(figures_dir, \"diff_to_baseline\"))"),
        new_code_cell("fig = figures.heatmap(df, metric=metric)\n"
                      "figures.save_figure(fig, os.path.join(figures_dir, \"heatmap\"))"),
        new_code_cell("fig = figures.surface3d(df, metric=metric)\n"
                      "figures.save_figure(fig, os.path.join(figures_dir, \"surface3d\"))"),
        new_markdown_cell("## The pretrained network\nEffective rank of each layer's weights, its learning "
                          "curves, and its per-class accuracy and mistakes on the pretraining classes' test split."),
        new_code_cell("pretrained_dir = pretrained_dir or os.path.join(results_dir, \"pretrained_models\") "
                      "if profile == \"smoke\" else (pretrained_dir or \"pretrained_models\")\n"
                      "info_files = sorted(glob.glob(os.path.join(pretrained_dir, \"*.json\")), key=os.path.getmtime)\n"
                      "print(len(info_files), \"pretrained models in\", pretrained_dir)"),
        new_code_cell("from functions.engine.study import load_splits\n"
                      "from functions.engine.training import predict\n"
                      "import json\n"
                      "if info_files:\n"
                      "    info = json.loads(open(info_files[-1]).read())\n"
                      "    pcfg = StudyConfig.from_dict(info[\"config\"]).replace(data_root=data_root)\n"
                      "    model = new_model(pcfg, len(pcfg.pre_train_classes))\n"
                      "    load_state(model, torch.load(info_files[-1].replace(\".json\", \".pth\"), weights_only=True))\n"
                      "    diagnostics.effective_rank(model)\n"
                      "    diagnostics.learning_curves({\"pretraining\": info[\"history\"]})\n"
                      "    source, _ = load_splits(pcfg)\n"
                      "    pred = predict(model, source.x_test)\n"
                      "    diagnostics.per_class_accuracy_figure(source.y_test, pred, source.class_names)\n"
                      "    diagnostics.misclassified_grid(source.x_test, source.y_test, pred, source.class_names)"),
        new_markdown_cell("## Tables for the paper\nMedian test accuracy ± bootstrap CI with rank-group "
                          "letters, as LaTeX and Markdown (also written next to the figures)."),
        new_code_cell("md = to_markdown(summary)\ntex = to_latex(summary)\n"
                      "os.makedirs(figures_dir, exist_ok=True)\n"
                      "open(os.path.join(figures_dir, \"summary.md\"), \"w\").write(md)\n"
                      "open(os.path.join(figures_dir, \"summary.tex\"), \"w\").write(tex)\n"
                      "print(md)"),
    ])


def _vis_parameters():
    cell = new_code_cell(
        "profile = profile_from_env(\"cpu\")  # smoke reads results/smoke/ (written by the smoke runs)\n"
        "results_dir = None                 # None: results/ (smoke: results/smoke/)\n"
        "pretrained_dir = None              # None: pretrained_models/ next to the notebook\n"
        "data_root = None                   # for the per-class plots; None: $TL_STUDY_DATA, else ./data\n"
        "condition = None                   # None: every condition found; e.g. \"FR\"\n"
        "metric = \"test_acc\"\n"
        "alpha = 0.05\n"
        "figures_dir = None                 # None: <results_dir>/figures\n"
        "_declared = set(globals())")
    cell.metadata["tags"] = ["parameters"]
    return cell


EXAMPLE_PARAMETERS = """\
profile = profile_from_env("cpu")  # cpu: the results shipped in the repository; smoke: the results/…/smoke/
                                   # folders that smoke runs of the other notebooks write (what nbval runs)
data_root = None                   # for the per-class plots; None: $TL_STUDY_DATA, else ./data
metric = "test_acc"
_declared = set(globals())"""

EXAMPLE_PATHS = """\
check_parameters(globals(), _declared)
def where(path):  # a shipped results folder, or its smoke/ twin
    return default_results_dir(profile, path)
mnist_results = where("MNIST/results")                      # baseline + FR + FT (truncation)
other_results = [where("FashionMNIST/results"), where("cross_domain/results")]
conditions_results = where("MNIST/results/conditions")      # AnB/AnB+/BnB/BnB+, surgical, strategies
surgical_results = [conditions_results, where("cross_domain/results/surgical")]
clustering_results = os.path.join(mnist_results, "clustering")
pretrained_dir = os.path.join(mnist_results, "pretrained_models") if profile == "smoke" else "MNIST/pretrained_models"
df = load_results(mnist_results)
print(len(df), "runs:", df.groupby("condition").size().to_dict())"""


def example() -> nbformat.NotebookNode:
    """The top-level tour: every plot type, drawn from results shipped in the repository."""
    cell = new_code_cell(EXAMPLE_PARAMETERS)
    cell.metadata["tags"] = ["parameters"]
    return notebook([
        new_markdown_cell(
            "# Example visualisations\n\n"
            "A tour of every plot this repository draws, from the results shipped in it (the `cpu` profile on "
            "real MNIST/FashionMNIST; see the README for how they were made and how long they took). Nothing "
            "is trained here: run it top to bottom in a minute. The last cell is an interactive explorer "
            "over every results folder it finds."),
        new_code_cell("import glob\nimport json\nimport os\n\nimport pandas as pd\nimport torch\n"
                      "from IPython.display import Markdown, display\n\n"
                      "from functions.analysis import diagnostics, figures, stats, transfer_conditions\n"
                      "from functions.analysis.results import load_results, with_settings\n"
                      "from functions.analysis.tables import to_markdown\n"
                      "from functions.analysis.widgets import ResultsExplorer\n"
                      "from functions.engine.conditions import STRATEGIES, YOSINSKI\n"
                      "from functions.engine.config import StudyConfig, profile_from_env\n"
                      "from functions.engine.networks import load_state, new_model\n"
                      "from functions.engine.study import load_splits\n"
                      "from functions.engine.training import predict\n"
                      "from functions.notebook import check_parameters, default_results_dir\n\n"
                      "figures.use_style()"),
        cell,
        new_code_cell(EXAMPLE_PATHS),
        new_markdown_cell("## 1. One study, every view\nMNIST digits 0–4 → 5–9. Statistics: paired Wilcoxon "
                          "tests within each fraction (pairs = repeats, which share one subset and one "
                          "initialisation), Holm-corrected; arms sharing a letter do not differ; CIs are "
                          "bootstrap 95 % intervals of the median."),
        new_code_cell("summary = stats.summarize(with_settings(df), metric=metric, by=(\"study\", \"setting\", \"fraction\"), seed=0)\n"
                      "display(Markdown(to_markdown(summary)))"),
        new_code_cell("figures.box_by_cut(df[df.condition.isin([\"baseline\", \"FR\"])], metric=metric);"),
        new_code_cell("figures.median_lines(df, metric=metric);"),
        new_code_cell("figures.diff_to_baseline(df, metric=metric);"),
        new_code_cell("figures.heatmap(df, metric=metric, relative=True);"),
        new_code_cell("figures.surface3d(df[df.condition.isin([\"baseline\", \"FR\"])], metric=metric);"),
        new_markdown_cell("## 2. Across datasets\nThe same FR grid for a class split of FashionMNIST and for "
                          "both cross-domain directions."),
        new_code_cell("others = [load_results(p) for p in other_results\n"
                      "          if glob.glob(os.path.join(p, \"*.jsonl\"))]\n"
                      "every = pd.concat([df[df.condition != \"FT\"], *others], ignore_index=True)\n"
                      "figures.median_lines(every, metric=metric);"),
        new_markdown_cell("## 3. Transfer conditions (Yosinski et al. 2014 for this CNN)\nAnB: A's first *k* "
                          "blocks frozen; AnB+: fine-tuned; BnB/BnB+: the same from a network pretrained on B "
                          "itself (the self-transfer control). Cut 0 is training from scratch."),
        new_code_cell("dfc = load_results(conditions_results)\n"
                      "yos = dfc[dfc.condition.isin([\"baseline\", *YOSINSKI])]\n"
                      "transfer_conditions.yosinski_plot(transfer_conditions.with_baseline_at_cut0(yos), metric=metric);"),
        new_code_cell("surgical = pd.concat([transfer_conditions.surgical_summary(load_results(p))\n"
                      "                      for p in surgical_results if os.path.isdir(p)], ignore_index=True)\n"
                      "transfer_conditions.surgical_plot(surgical);"),
        new_code_cell("strategies = dfc[dfc.condition.isin(STRATEGIES)]\n"
                      "curve_fraction = sorted(strategies.fraction.unique())[0]\n"
                      "diagnostics.learning_curves(transfer_conditions.curves_at(strategies, curve_fraction));"),
        new_markdown_cell("## 4. Where class structure appears\nClustering of each block's activations of the "
                          "fine-tuning classes (agglomerative, k = number of classes), pretrained network."),
        new_code_cell("cdf = pd.concat([pd.read_csv(p) for p in glob.glob(os.path.join(clustering_results, \"clustering_*.csv\"))])\n"
                      "pre = cdf[(cdf.model == \"pretrained\") & (cdf.method == \"agglomerative\")]\n"
                      "figures.box_clustering(pre, metric=\"ari\");"),
        new_markdown_cell("## 5. The pretrained network\nEffective rank of each layer's weights, learning curves, "
                          "per-class accuracy and the mistakes it makes on the pretraining classes' test split."),
        new_code_cell("info_path = sorted(glob.glob(os.path.join(pretrained_dir, \"*.json\")))[0]\n"
                      "info = json.load(open(info_path))\n"
                      "pcfg = StudyConfig.from_dict(info[\"config\"]).replace(data_root=data_root)\n"
                      "model = new_model(pcfg, len(pcfg.pre_train_classes))\n"
                      "load_state(model, torch.load(info_path.replace(\".json\", \".pth\"), weights_only=True))\n"
                      "diagnostics.effective_rank(model)\n"
                      "diagnostics.learning_curves({\"pretraining\": info[\"history\"]});"),
        new_code_cell("source, _ = load_splits(pcfg)\npred = predict(model, source.x_test)\n"
                      "diagnostics.per_class_accuracy_figure(source.y_test, pred, source.class_names)\n"
                      "diagnostics.misclassified_grid(source.x_test, source.y_test, pred, source.class_names);"),
        new_markdown_cell("## 6. Explore\nPick any results folder of the repository, a study, a condition, "
                          "fractions, a metric and a plot type (needs a live kernel)."),
        new_code_cell("explorer = ResultsExplorer(root=\".\")\nexplorer.widget"),
    ])


BUILDERS = {"empirical_experiment": empirical, "truncation_experiment": truncation,
            "clustering_experiment": clustering, "visualizations": visualizations}


def rendered(path: Path) -> bool:
    """True when a notebook on disk carries outputs (rendered from shipped results)."""
    if not path.exists():
        return False
    nb = nbformat.read(path, as_version=4)
    return any(cell.get("outputs") for cell in nb.cells if cell.cell_type == "code")


def write(nb: nbformat.NotebookNode, path: Path, force: bool) -> None:
    """Write a generated notebook unless that would erase rendered outputs (then only with --force)."""
    if rendered(path) and not force:
        print("kept", path.relative_to(REPO), "(has rendered outputs; --force rewrites it)")
        return
    path.parent.mkdir(exist_ok=True)
    nbformat.write(nb, path)
    print("wrote", path.relative_to(REPO))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--force", action="store_true", help="also rewrite notebooks with rendered results")
    args = parser.parse_args()
    for folder in FOLDERS:
        for name, build in BUILDERS.items():
            write(build(folder), REPO / folder / f"{name}.ipynb", args.force)
    write(example(), REPO / "example_visualizations.ipynb", args.force)


if __name__ == "__main__":
    main()
