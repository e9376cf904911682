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
from typing import Optional, Union

from torchinfo import summary

from functions.analysis import figures
from functions.analysis.results import summary_table
from functions.analysis.tables import delta_table
from functions.engine.config import profile_from_env
from functions.engine.datasets import DATASET_SHAPES
from functions.engine.study import Study
from functions.notebook import check_parameters, executor_for, study_config

# %% tags=["parameters"]
profile: str = profile_from_env("cpu")          # smoke | cpu | paper; default from $TL_STUDY_PROFILE
data_root: Optional[str] = None                 # None: $TL_STUDY_DATA, else ./data
results_dir: Optional[str] = None               # None: results/ (smoke runs: results/smoke/)
percentages: Optional[list[float]] = None       # None: the profile's fractions, e.g. [0.001, 0.01, 0.1]
cuts: Optional[list[int]] = None                # None: every cut 0..depth
repeats: Optional[Union[int, list[int]]] = None  # None: the profile's repeats (int or one per fraction)
device: str = "cpu"                             # "cpu", "cuda" or "auto"
seed: int = 0
# {{folder_parameters}}
pre_train_classes: Optional[list[int]] = None   # None: from class_split
fine_tune_classes: Optional[list[int]] = None   # None: from class_split
freeze: bool = True                             # keep transferred blocks frozen
reinit: bool = True                             # re-initialise blocks after the cut
scheduler_address: str = ""                     # "" runs here; "local": a LocalCluster; or "tcp://host:8786"
overrides: dict = {}                            # any other StudyConfig field, e.g. {"lr_fine_tune": 3e-4}
_declared = set(globals())

# %%
check_parameters(globals(), _declared)
cfg = study_config(profile, overrides, data_root=data_root, results_dir=results_dir, percentages=percentages,
                   cuts=cuts, repeats=repeats, device=device, seed=seed,
                   source_dataset=source_dataset, target_dataset=target_dataset,  # noqa: F821
                   class_split=class_split,  # noqa: F821 - these three come from the parameters cell
                   pre_train_classes=pre_train_classes, fine_tune_classes=fine_tune_classes, freeze=freeze,
                   reinit=reinit)
print(cfg.study_name(), "| condition", cfg.condition, "| profile", cfg.profile)

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
df = study.run(("baseline", cfg.condition), executor=executor_for(scheduler_address))

# %% [markdown]
# Median test accuracy per fraction (rows) and arm (columns); the baseline is training from scratch on the
# same subset.

# %%
summary_table(df).round(4)

# %%
paths = study.export_original()  # original_format/: baselines_*.json, cuts_*.json
print(study.store.path, *paths, sep="\n")

# %% [markdown]
# ## Headline: what keeping *k* blocks gains over training from scratch
# Per fraction, the median over repeats of the paired difference cut − baseline (same subset, same initial
# weights), with its bootstrap 95 % CI. Filled markers and ✓: significant after Holm over the cut-vs-baseline
# comparisons of that fraction (Wilcoxon signed-rank, pairs = repeats). The table gives the same differences in
# points of test accuracy.

# %%
figures.diff_to_baseline(df);

# %%
delta_table(df)
