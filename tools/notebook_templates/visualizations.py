# %% [markdown]
# # Results: {{title}}
#
# Every figure of this folder's results, with the statistics behind them: paired Wilcoxon tests between all arms
# (cuts and baseline) within each fraction, paired by repeat, Holm-corrected; rank groups (arms that do not
# differ significantly share a letter); bootstrap 95 % CIs of medians; the median paired difference to the
# baseline, its p-value Holm-corrected over the cut-vs-baseline comparisons of that fraction. Rerun after adding
# results: the tables and figures follow.

# %%
import glob
import os
from typing import Optional

from functions.analysis import diagnostics, figures, stats
from functions.analysis.labels import differences_in_points, with_fraction_labels
from functions.analysis.results import load_results, transfer_study_rows, with_settings
from functions.analysis.tables import to_latex, to_markdown
from functions.engine.config import profile_from_env
from functions.engine.fileio import atomic_write_text
from functions.engine.study import Study
from functions.notebook import check_parameters, default_results_dir, study_config

# %% tags=["parameters"]
profile: str = profile_from_env("cpu")  # smoke reads results/smoke/ (made here if missing)
results_dir: Optional[str] = None       # None: results/ (smoke: results/smoke/)
pretrained_dir: Optional[str] = None    # None: pretrained_models/ next to the notebook (smoke: in results_dir)
data_root: Optional[str] = None         # for the per-class plots; None: $TL_STUDY_DATA, else ./data
condition: Optional[str] = None         # None: every condition found; e.g. "FR"
metric: str = "test_acc"
alpha: float = 0.05
figures_dir: Optional[str] = None       # None: <results_dir>/figures

# %%
check_parameters(globals())
results_dir = results_dir or default_results_dir(profile)
figures_dir = figures_dir or os.path.join(results_dir, "figures")
if profile == "smoke":
    # The smoke profile ships nothing: make the small grid this folder's smoke runs of empirical_experiment and
    # truncation_experiment leave (the same grid: what they stored is not trained again), so this notebook
    # does not depend on the order the notebooks run in.
    # {{smoke_setting}}
    Study(study_config("smoke", results_dir=results_dir, data_root=data_root, **setting),  # noqa: F821 (setting: above)
          verbose=False).run(("baseline", "FR", "FT"), progress=False)
if not glob.glob(os.path.join(results_dir, "*.json*")):
    raise FileNotFoundError(f"no results in {results_dir!r}: run empirical_experiment.ipynb "
                            f"(and truncation_experiment.ipynb) with profile={profile!r} first")
# the stores (exports in original_format/ are not read), less the what-transfers controls (what_transfers.ipynb)
# and fractions where only the baseline has run so far
df = transfer_study_rows(load_results(results_dir))
if condition:
    df = df[df.condition.isin(["baseline", condition])]
print(len(df), "runs;", ", ".join(sorted(df.study.unique())), "; conditions:", sorted(df.condition.unique()))

# %% [markdown]
# ## Statistics per fraction
# Median test accuracy with bootstrap CI, rank group, and the paired difference to the baseline in points
# (Holm-corrected p); fractions in per cent. A warning column says when the number of paired repeats makes
# significance impossible.

# %%
# Each condition gets its own copy of the baseline (a 'setting'): FR and truncation share one
# baseline, and their 'cut 2' rows must not be paired with each other.
summary = stats.summarize(with_settings(df), metric=metric, alpha=alpha,
                          by=("study", "setting", "fraction"), seed=0)
with_fraction_labels(differences_in_points(summary)).round(4)

# %%
figures.use_style()
fig = figures.box_by_cut(df, metric=metric)
figures.save_figure(fig, os.path.join(figures_dir, "box_by_cut"))

# %%
fig = figures.median_lines(df, metric=metric)
figures.save_figure(fig, os.path.join(figures_dir, "median_lines"))

# %%
fig = figures.diff_to_baseline(df, metric=metric)
figures.save_figure(fig, os.path.join(figures_dir, "diff_to_baseline"))

# %%
fig = figures.heatmap(df, metric=metric)
figures.save_figure(fig, os.path.join(figures_dir, "heatmap"))

# %%
fig = figures.surface3d(df, metric=metric)
figures.save_figure(fig, os.path.join(figures_dir, "surface3d"))

# %% [markdown]
# ## The pretrained network
# Effective rank of each layer's weights, its learning curves, and its per-class accuracy and mistakes on the
# pretraining classes' test split.

# %%
if not pretrained_dir:
    pretrained_dir = os.path.join(results_dir, "pretrained_models") if profile == "smoke" else "pretrained_models"
info_files = sorted(glob.glob(os.path.join(pretrained_dir, "*.json")), key=os.path.getmtime)
print(len(info_files), "pretrained models in", pretrained_dir)
if info_files:  # the latest one
    _ = diagnostics.pretrained_overview(info_files[-1], data_root=data_root)

# %% [markdown]
# ## Tables for the paper
# Median test accuracy ± bootstrap CI with rank-group letters, as LaTeX and Markdown (also written next to the
# figures).

# %%
md = to_markdown(summary)
tex = to_latex(summary)
os.makedirs(figures_dir, exist_ok=True)
atomic_write_text(os.path.join(figures_dir, "summary.md"), md)
atomic_write_text(os.path.join(figures_dir, "summary.tex"), tex)
print(md)
