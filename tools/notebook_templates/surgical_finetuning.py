# %% [markdown]
# # Surgical fine-tuning across domains: which block should be tuned?
#
# **Question.** Starting from the whole pretrained network with a new head, and fine-tuning only block k (every
# other block frozen), which k works best — and does the answer depend on the kind of shift? Lee et al. (2023,
# *Surgical fine-tuning improves adaptation to distribution shifts*) found that input-level shifts favour early
# blocks and label-level shifts the last layers. MNIST → FashionMNIST changes the inputs (and the labels); MNIST
# 0–4 → 5–9 (`MNIST/transfer_conditions.ipynb`) keeps the input domain and changes only the labels.
#
# Each (fraction, repeat) uses one balanced subset for every k, and the head starts from the same seed, so
# blocks are compared pairwise. `head only` trains the head alone.

# %%
import os
from typing import Optional, Union  # noqa: F401 - used by the shared study parameters

import pandas as pd
from IPython.display import display

from functions.analysis import figures, transfer_conditions
from functions.analysis.results import load_results
from functions.engine.architectures import block_count
from functions.engine.conditions import SURGICAL
from functions.engine.config import profile_from_env  # noqa: F401 - the parameters cell's default profile
from functions.engine.fileio import atomic_write_csv
from functions.engine.protocols import variant_of
from functions.engine.study import Study
from functions.notebook import check_parameters, default_results_dir, study_config

# %% tags=["parameters"]
# {{study_parameters}}
architecture: str = "CustomCNN"                 # or "ResNet": depth 3, 5 or 7 conv layers, cuts count blocks
depth: Optional[int] = None                     # None: the profile's depth
class_split_results: Optional[str] = None       # surgical rows of the class split to compare with
                                                # (None: ../MNIST/results/conditions, smoke: …/smoke)

# %%
params = check_parameters(globals())
results_dir = params["results_dir"] or default_results_dir(params["profile"], "results/surgical")
cfg = study_config(params, results_dir=results_dir, pretrained_dir=os.path.join(results_dir, "pretrained_models"))
print(cfg.study_name(), "|", cfg.architecture, "depth", cfg.depth, f"({block_count(cfg)} blocks)",
      "| profile", cfg.profile, "| protocol", variant_of(cfg).label, "| fractions", cfg.percentages,
      "| repeats", cfg.repeats)
study = Study(cfg, record_history=True)  # rows carry per-epoch train/val loss for the learning curves
_ = study.pretrained
print(f"A network (pretrained on {cfg.pre_train_classes}): test accuracy {study.pretrain_info.get('test_acc', float('nan')):.4f}")

# %%
df = study.run((SURGICAL,))
surgical = transfer_conditions.surgical_summary(df)
display(surgical.pivot_table(index="fraction", columns="tuned", values="median").round(4))

# %% [markdown]
# The class split's surgical results (same engine, same profile) next to this domain shift: the best block per
# fraction, the blocks not significantly worse than it, and the gain of each block over training the head alone.

# %%
class_split_results = class_split_results or default_results_dir(cfg.profile, "../MNIST/results/conditions")
frames = [df]
if os.path.isdir(class_split_results) and any(f.endswith(".jsonl") for f in os.listdir(class_split_results)):
    other = load_results(class_split_results)
    frames.append(other[other["condition"] == SURGICAL])
else:
    print(f"no class-split results under {class_split_results}: run MNIST/transfer_conditions.ipynb first")
both = transfer_conditions.surgical_summary(pd.concat(frames, ignore_index=True))
display(transfer_conditions.best_blocks(both))
fig = transfer_conditions.surgical_plot(both)

# %%
os.makedirs(cfg.results_dir, exist_ok=True)
atomic_write_csv(both, os.path.join(cfg.results_dir, "surgical_summary.csv"), index=False)
atomic_write_csv(transfer_conditions.best_blocks(both), os.path.join(cfg.results_dir, "best_blocks.csv"),
                 index=False)
print(study.store.path, *figures.save_figure(fig, os.path.join(cfg.results_dir, "surgical")), sep="\n")
