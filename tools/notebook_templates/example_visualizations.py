# %% [markdown]
# # Example visualisations
#
# A tour of every plot this repository draws, from the results shipped in it (the `cpu` profile on real
# MNIST/FashionMNIST; see the README for how they were made and how long they took). Nothing is trained here:
# run it top to bottom in a minute. The last cell is an interactive explorer over every results folder it finds.
# In the `smoke` profile (what the tests run) it reads the small results the smoke runs of the other notebooks
# leave under `results/…/smoke/`, and makes the ones that are missing itself (seconds on a CPU).

# %%
import glob
import os
from typing import Optional

import pandas as pd
from IPython.display import Markdown, display

from functions.analysis import clustering, diagnostics, figures, stats, transfer_conditions
from functions.analysis.results import load_results, transfer_study_rows, with_settings
from functions.analysis.tables import to_markdown
from functions.analysis.widgets import ResultsExplorer
from functions.engine.conditions import STRATEGIES, SURGICAL, YOSINSKI
from functions.engine.config import profile_from_env
from functions.engine.fileio import atomic_write_csv
from functions.engine.study import Study
from functions.notebook import check_parameters, default_results_dir, study_config

figures.use_style()

# %% tags=["parameters"]
profile: str = profile_from_env("cpu")  # cpu: the results shipped in the repository; smoke: results/…/smoke/
data_root: Optional[str] = None         # for the per-class plots; None: $TL_STUDY_DATA, else ./data
metric: str = "test_acc"

# %%
check_parameters(globals())


def where(path):  # a shipped results folder, or its smoke/ twin
    return default_results_dir(profile, path)


mnist_results = where("MNIST/results")                  # baseline + FR + FT (truncation)
other_results = [where("FashionMNIST/results"), where("cross_domain/results")]


def recomputed_or_original(path, pattern="*.jsonl"):
    """``path`` when it holds results of the default protocol; else the original-protocol results kept in
    ``results/original_protocol/`` (grids not yet recomputed under the default), said in a printed line."""
    if profile == "smoke" or glob.glob(os.path.join(where(path), pattern)):
        return where(path)
    folder, sub = path.split("/results", 1)
    old = f"{folder}/results/original_protocol{sub}"
    print(f"{path}: not yet recomputed under the default protocol; showing the original protocol's {old}")
    return old


conditions_results = recomputed_or_original("MNIST/results/conditions")  # AnB/AnB+/BnB/BnB+, surgical, strategies
surgical_results = [conditions_results, recomputed_or_original("cross_domain/results/surgical")]
clustering_results = recomputed_or_original("MNIST/results/clustering", "clustering_*.csv")
pretrained_dir = os.path.join(mnist_results, "pretrained_models") if profile == "smoke" else "MNIST/pretrained_models"

# %%
if profile == "smoke":
    # The smoke profile ships nothing: find the small results the smoke runs of MNIST/truncation_experiment,
    # MNIST/transfer_conditions and MNIST/clustering_experiment leave (the same grids, so nothing is trained
    # twice), or make the missing ones here.
    smoke = dict(data_root=data_root, source_dataset="MNIST", target_dataset="MNIST", class_split="regular")
    mnist = Study(study_config("smoke", results_dir=mnist_results, **smoke), verbose=False)
    mnist.run(("baseline", "FR", "FT"), progress=False)
    Study(study_config("smoke", results_dir=conditions_results, **smoke), verbose=False,
          record_history=True).run(("baseline", *YOSINSKI, SURGICAL, *STRATEGIES), progress=False)
    if not glob.glob(os.path.join(clustering_results, "clustering_*.csv")):
        x, y = mnist.target.x_test, mnist.target.y_test
        cdf = clustering.cluster_study(mnist.pretrained, x, y, [0.5, 1.0], 2, methods=["agglomerative"], seed=0,
                                       dataset="MNIST", split="test")
        os.makedirs(clustering_results, exist_ok=True)
        atomic_write_csv(cdf.assign(model="pretrained"), os.path.join(clustering_results, "clustering_MNIST.csv"),
                         index=False)
df = transfer_study_rows(load_results(mnist_results))  # the what-transfers controls have their own notebook
print(len(df), "runs:", df.groupby("condition").size().to_dict())

# %% [markdown]
# ## 1. One study, every view
# MNIST digits 0–4 → 5–9. Statistics: paired Wilcoxon tests within each fraction (pairs = repeats, which share
# one subset and one initialisation), Holm-corrected; CIs are bootstrap 95 % intervals of the median. The table's
# caption says which test each mark comes from (a star: the cut against the baseline; letters, where they
# separate arms: all pairs). Differences to the baseline are in points of accuracy, fractions in per cent.

# %%
summary = stats.summarize(with_settings(df), metric=metric, by=("study", "setting", "fraction"), seed=0)
display(Markdown(to_markdown(summary)))

# %%
figures.box_by_cut(df[df.condition.isin(["baseline", "FR"])], metric=metric);

# %%
figures.median_lines(df, metric=metric);

# %%
figures.diff_to_baseline(df, metric=metric);

# %%
figures.heatmap(df, metric=metric, relative=True);

# %%
figures.surface3d(df[df.condition.isin(["baseline", "FR"])], metric=metric);

# %% [markdown]
# ## 2. Across datasets
# The same FR grid for a class split of FashionMNIST and for both cross-domain directions.

# %%
others = [transfer_study_rows(load_results(p)) for p in other_results
          if glob.glob(os.path.join(p, "*.jsonl"))]
every = pd.concat([df[df.condition != "FT"], *others], ignore_index=True)
figures.median_lines(every, metric=metric);

# %% [markdown]
# ## 3. Transfer conditions (Yosinski et al. 2014 for this CNN)
# AnB: A's first *k* blocks frozen; AnB+: fine-tuned; BnB/BnB+: the same from a network pretrained on B itself
# (the self-transfer control). Cut 0 is training from scratch.

# %%
dfc = load_results(conditions_results)
yos = dfc[dfc.condition.isin(["baseline", *YOSINSKI])]
transfer_conditions.yosinski_plot(transfer_conditions.with_baseline_at_cut0(yos), metric=metric);

# %%
surgical = pd.concat([transfer_conditions.surgical_summary(load_results(p))
                      for p in surgical_results if os.path.isdir(p)], ignore_index=True)
transfer_conditions.surgical_plot(surgical);

# %%
strategies = dfc[dfc.condition.isin(STRATEGIES)]
curve_fraction = sorted(strategies.fraction.unique())[0]
diagnostics.learning_curves(transfer_conditions.curves_at(strategies, curve_fraction));

# %% [markdown]
# ## 4. Where class structure appears
# Clustering of each block's activations of the fine-tuning classes (agglomerative, k = number of classes),
# pretrained network.

# %%
cdf = pd.concat([pd.read_csv(p) for p in glob.glob(os.path.join(clustering_results, "clustering_*.csv"))])
pre = cdf[(cdf.model == "pretrained") & (cdf.method == "agglomerative")]
figures.box_clustering(pre, metric="ari");

# %% [markdown]
# ## 5. The pretrained network
# Effective rank of each layer's weights, learning curves, per-class accuracy and the mistakes it makes on the
# pretraining classes' test split.

# %%
info_path = sorted(glob.glob(os.path.join(pretrained_dir, "*.json")))[0]
diagnostics.pretrained_overview(info_path, data_root=data_root);

# %% [markdown]
# ## 6. Explore
# Pick any results folder of the repository, a study, a condition, fractions, a metric and a plot type (needs a
# live kernel).

# %%
explorer = ResultsExplorer(root=".", scratch=profile == "smoke")  # smoke: its git-ignored scratch folders too
explorer
