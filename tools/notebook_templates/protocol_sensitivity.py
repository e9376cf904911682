# %% [markdown]
# # Protocol sensitivity: {{title}}
#
# **Question.** Does the small-data transfer gain survive a protocol that is fair to the from-scratch baseline?
# The original protocol counts epochs: at 0.1 % of the data (25 images, batch 64) an epoch is one optimizer step,
# so "patience 5 epochs" can stop a run after 5 steps — starving the baseline, which needs more steps than a
# network whose first blocks are already trained (He et al. 2019, *Rethinking ImageNet Pre-training*: a
# from-scratch network catches up when it is given the same optimizer steps). And every run picks its best state
# on a validation split of thousands of labelled images while it trains on a few dozen, which no one with a
# few dozen labels has (Oliver et al. 2018, *Realistic Evaluation of Deep Semi-Supervised Learning
# Algorithms*: validation must come from the labels one has).
#
# The same grid — the baseline and `condition` at every cut, on the same subsets and initial weights — is run
# under five protocols (README, "Protocols"): `original` (epochs); `steps` (a budget of optimizer steps, not
# epochs); `realistic` (the steps budget, validation carved from the run's own labelled subset); `fixed budget`
# (exactly `min_steps` steps on the whole subset, no validation, last state kept); `realistic, tuned lr` (as
# `realistic`, but every arm picks its learning rate from 3e-4, 1e-3, 3e-3 on its own carved validation split,
# so no arm is held to a rate that suits another — the baseline least of all). Every gain is paired:
# a cut's test accuracy minus the baseline's under the *same* protocol, per repeat. Results are appended run
# by run to one store per protocol under `results/protocols/`: rerun to resume.

# %%
import os
from typing import Optional, Union

from IPython.display import Markdown, display

from functions.analysis import figures
from functions.analysis.protocols import (budget_overview, chosen_learning_rates, gain_figure, gain_shifts,
                                          starved_runs, summary_frame, transfer_gains, verdict, wall_times)
from functions.engine.config import profile_from_env
from functions.engine.protocols import PROTOCOL_VARIANTS, run_protocols
from functions.notebook import check_parameters, default_results_dir, executor_for, study_config

# %% tags=["parameters"]
profile: str = profile_from_env("cpu")          # smoke | cpu | paper; default from $TL_STUDY_PROFILE
data_root: Optional[str] = None                 # None: $TL_STUDY_DATA, else ./data
results_dir: Optional[str] = None               # None: results/protocols (smoke runs: results/protocols/smoke)
percentages: Optional[list[float]] = None       # None: [0.001, 0.01, 0.1] (smoke: the profile's)
cuts: Optional[list[int]] = None                # None: every cut 0..depth
repeats: Optional[Union[int, list[int]]] = None  # None: 16 at 0.001 and 0.01, else 8 (smoke: the profile's)
device: str = "cpu"                             # "cpu", "cuda" or "auto"
seed: int = 0
# {{folder_parameters}}
pre_train_classes: Optional[list[int]] = None   # None: from class_split
fine_tune_classes: Optional[list[int]] = None   # None: from class_split
variants: Optional[list[str]] = None            # None: all five (original, steps, realistic, fixed budget,
                                                # realistic, tuned lr)
condition: str = "FR"                           # compared with the baseline at every cut
scheduler_address: str = ""                     # "" runs here; "local": a LocalCluster; or "tcp://host:8786"
overrides: dict = {}                            # any other StudyConfig field, e.g. {"min_steps": 1000}
_declared = set(globals())

# %%
check_parameters(globals(), _declared)
if profile != "smoke":  # the shipped protocol grid; smoke keeps the profile's tiny one
    percentages = percentages or [0.001, 0.01, 0.1]
    repeats = repeats or [16 if f < 0.05 else 8 for f in percentages]
results_dir = results_dir or default_results_dir(profile, "results/protocols")
variants = variants or list(PROTOCOL_VARIANTS)
cfg = study_config(profile, overrides, data_root=data_root, results_dir=results_dir, percentages=percentages,
                   cuts=cuts, repeats=repeats, device=device, seed=seed,
                   source_dataset=source_dataset, target_dataset=target_dataset,  # noqa: F821
                   class_split=class_split,  # noqa: F821 - these three come from the parameters cell
                   pre_train_classes=pre_train_classes, fine_tune_classes=fine_tune_classes)
print(cfg.study_name(), "| baseline vs", condition, "| protocols", variants, "| profile", cfg.profile)
print("fractions", cfg.percentages, "| repeats", cfg.repeats, "| steps", cfg.min_steps, "to", cfg.max_steps,
      "| validation every", cfg.eval_every, "steps")

# %% [markdown]
# ## The grids
# One store per protocol; runs already stored are read, the others trained (the pretrained network is shared).

# %%
rows, walls = run_protocols(cfg, root=".", conditions=("baseline", condition), variants=variants,
                            executor=executor_for(scheduler_address))
print(len(rows), "runs;", ", ".join(f"{label}: {seconds:.0f} s" for label, seconds in walls.items()),
      "spent in this call")

# %% [markdown]
# ## The gain of each cut under each protocol
# Median over repeats of the paired gain (cut − baseline of the same protocol, in points), bootstrap 95 % CI;
# filled markers and ✓: significant after Holm over the cuts of that protocol and fraction (Wilcoxon
# signed-rank, pairs = repeats).

# %%
gains = transfer_gains(rows)
fig = gain_figure(gains)
figures.save_figure(fig, os.path.join(results_dir, "figures", "protocol_gains"))
summary_frame(gains)

# %% [markdown]
# How much each gain moves from the original protocol to each fair one (realistic, and realistic with a tuned
# learning rate), paired by repeat; Holm over the (fraction, cut) pairs of one comparison.

# %%
shift = gain_shifts(rows)
shift.round(4) if len(shift) else "the original protocol and a fair one were not both run"

# %% [markdown]
# ## What each protocol actually trained
# Per protocol and fraction: median labelled images used for training and for validation, the median optimizer
# steps of each arm, and how many runs took fewer than 50 steps (the symptom of an epoch-counted protocol on a
# tiny subset); then, where there are such runs, their median test accuracy next to the others'; and the wall
# time per protocol. (`budget_table(rows)` has every median per arm, best step and epochs included.)

# %%
budget_overview(rows)

# %%
starved = starved_runs(rows)
starved[starved["starved"] > 0].round(4)

# %%
chosen_learning_rates(rows)  # empty unless "realistic, tuned lr" ran: how many repeats chose each rate

# %%
wall_times(rows)

# %% [markdown]
# ## Verdict
# Computed from the tables above.

# %%
display(Markdown(verdict(gains, shift if len(shift) else None)))
