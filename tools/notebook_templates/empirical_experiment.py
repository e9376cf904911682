# %% [markdown]
# # Layer-wise transfer: {{title}}
#
# **Question.** How much does keeping the first *k* pretrained conv blocks help when fine-tuning on new classes
# with little data, compared with training from scratch on the same subsets?
#
# A CNN is pretrained on the first class group; for each cut *k* the blocks `[0, k)` are kept (frozen when
# `freeze`), the blocks after the cut are re-initialised (`reinit`) or kept, the head is new. Every fraction ×
# repeat uses one balanced subset shared by all cuts and the baseline (cut −1), so comparisons are paired.
# `freeze`/`reinit` select the condition: FR (default), F, UR, U. Results are appended run by run to
# `results/*.jsonl`: rerun the notebook to resume. The notebook ends on the headline: the gain of each cut
# over the baseline, as a figure and as a table.

# %%
from typing import Optional, Union  # noqa: F401 - used by the shared study parameters

from torchinfo import summary

from functions.analysis import figures, power
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
freeze: bool = True                             # keep transferred blocks frozen
reinit: bool = True                             # re-initialise blocks after the cut
scheduler_address: str = ""                     # "": worker processes when they pay, else here; "inprocess": here; "local": a LocalCluster; or "tcp://host:8786"

# %%
params = check_parameters(globals())
cfg = study_config(params)
print(cfg.study_name(), "| condition", cfg.condition, "| profile", cfg.profile, "| protocol", variant_of(cfg).label,
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
# Every fraction × repeat × arm: runs already in the store are read, the others trained.

# %%
df = study.run(("baseline", cfg.condition), executor=executor_for(params["scheduler_address"]))

# %% [markdown]
# Median test accuracy per fraction (rows) and arm (columns); the baseline is training from scratch on the
# same subset.

# %%
with_fraction_labels(summary_table(df).round(4))

# %%
paths = study.export_original()  # original_format/: baselines_*.json, cuts_*.json
print(study.store.path, *paths, sep="\n")

# %% [markdown]
# ## How many repeats would settle it?
# For every cut whose gain is not yet Holm-significant: the repeats at which this study's own test (exact
# Wilcoxon, Holm over the fraction's cuts) would reach 80 % power for the observed gain, estimated by
# resampling the paired differences; the figure shows power against repeats for the least settled fraction.

# %%
advice, curves = power.advise_study(df, condition=cfg.condition)
print(*advice["advice"], sep="\n")
if curves is not None:
    power.power_figure(curves);

# %% [markdown]
# ## Headline: what keeping *k* blocks gains over training from scratch
# Per fraction, the median over repeats of the paired difference cut − baseline (same subset, same initial
# weights), in points of test accuracy, with the exact 95 % interval that matches the test (Hodges–Lehmann; none
# below 6 pairs); the figure and the table show the same numbers. Filled markers and ✓: significant after Holm
# over the cut-vs-baseline comparisons of that fraction (Wilcoxon signed-rank, pairs = repeats; `pairs` in the
# table). The next line names the protocol the runs were trained under and their repeats.

# %%
print(cfg.study_name(), "|", protocol_text(df), "|", repeats_text(df))
figures.diff_to_baseline(df);

# %%
delta_table(df)
