# %% [markdown]
# # Truncation vs re-initialisation: {{title}}
#
# **Question.** Are the blocks after the cut worth having at all? Truncation (FT) removes them and puts the new
# head directly on the frozen block *k − 1*; FR keeps the same number of blocks but re-initialises and retrains
# them. Both run on the same paired subsets as the baseline. The notebook ends on the headline: the gain of
# each cut over the baseline under FR and under FT, as a figure and as a table.

# %%
from typing import Optional, Union  # noqa: F401 - used by the shared study parameters

from torchinfo import summary

from functions.analysis import figures, power, stats
from functions.analysis.labels import protocol_text, repeats_text, with_fraction_labels
from functions.analysis.results import summary_table
from functions.analysis.tables import delta_table
from functions.engine.config import profile_from_env  # noqa: F401 - the parameters cell's default profile
from functions.engine.datasets import DATASET_SHAPES
from functions.engine.protocols import variant_of
from functions.engine.study import Study
from functions.notebook import check_parameters, executor_for, study_config

# %% tags=["parameters"]
# {{study_parameters}}
scheduler_address: str = ""                     # "": worker processes when they pay, else here; "inprocess": here; "local": a LocalCluster; or "tcp://host:8786"

# %%
params = check_parameters(globals())
cfg = study_config(params)
print(cfg.study_name(), "| conditions FR and FT | profile", cfg.profile, "| protocol", variant_of(cfg).label,
      "| fractions", cfg.percentages, "| repeats", cfg.repeats)

# %% [markdown]
# ## The pretrained network
# Trained once on the first class group, then loaded from `pretrained_models/`: its layers, output shapes and
# parameter counts.

# %%
study = Study(cfg)
pretrained = study.pretrained
print(f"pretrained test accuracy: {study.pretrain_info.get('test_acc', float('nan')):.4f}")
summary(pretrained, input_size=(1, *DATASET_SHAPES[cfg.source_dataset]), device="cpu", verbose=0)

# %% [markdown]
# ## The grid
# Baseline, FR and FT at every cut: runs already in the store are read, the others trained.

# %%
df = study.run(("baseline", "FR", "FT"), executor=executor_for(params["scheduler_address"]))

# %% [markdown]
# Median test accuracy: truncated (FT) and re-initialised (FR) side by side.

# %%
named = df.assign(arm=[a if c == "baseline" else f"{c} k={k}"
                       for a, c, k in zip(df["arm"], df["condition"], df["cut"])])
with_fraction_labels(summary_table(named).round(4)).T

# %% [markdown]
# Paired Wilcoxon tests of FT against FR at the same cut (Holm-corrected within each fraction); Δ: the median
# over repeats of `arm_a` − `arm_b` (FR − FT), in points.

# %%
tests = stats.paired_tests(named, by=("fraction",))
same_cut = tests["arm_a"].str.split("=").str[-1] == tests["arm_b"].str.split("=").str[-1]
columns = ["fraction", "arm_a", "arm_b", "n_pairs", "median_diff", "p_holm", "significant", "warning"]
shown = tests[same_cut & tests["arm_a"].str.startswith(("FR", "FT"))][columns]
shown = shown.assign(median_diff=(100 * shown["median_diff"]).round(1)).rename(columns={"median_diff": "Δ (points)"})
with_fraction_labels(shown.round(4))

# %%
for condition in ("FR", "FT"):
    print(*study.export_original(condition=condition), sep="\n")

# %% [markdown]
# ## Headline: what keeping *k* blocks gains over training from scratch, with and without the blocks after the cut
# Per fraction, the median over repeats of the paired difference cut − baseline (same subset, same initial
# weights), in points of test accuracy, with the exact 95 % interval that matches the test (Hodges–Lehmann; none
# below 6 pairs); one panel per condition; the figure and the table show the same numbers. Filled markers and ✓:
# significant after Holm over the cut-vs-baseline comparisons of that condition and fraction (Wilcoxon
# signed-rank, pairs = repeats; `pairs` in the table). The next line names the protocol the runs were trained
# under and their repeats.

# %%
print(cfg.study_name(), "|", protocol_text(df), "|", repeats_text(df))
figures.diff_to_baseline(df);

# %%
delta_table(df)

# %% [markdown]
# ## How many repeats would settle it?
# For every cut whose gain is not yet Holm-significant: the repeats at which this study's own test (exact
# Wilcoxon, Holm over the fraction's cuts) would reach 80 % power for the observed gain, estimated by
# resampling the paired differences; the figure shows power against repeats for the least settled fraction.

# %%
advice, curves = power.advise_study(df, condition="FR")
print(*advice["advice"], sep="\n")
if curves is not None:
    power.power_figure(curves);
