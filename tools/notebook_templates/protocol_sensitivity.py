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
from typing import Optional, Union  # noqa: F401 - used by the shared study parameters

from IPython.display import Markdown, display

from functions.analysis import figures
from functions.analysis.labels import with_fraction_labels
from functions.analysis.protocols import (budget_overview, chosen_learning_rates, gain_figure, gain_shifts,
                                          shift_table, starved_runs, summary_frame, transfer_gains, verdict,
                                          wall_times)
from functions.analysis.protocols import budget_table  # noqa: F401 - every median per arm, for the reader
from functions.engine.config import profile_from_env  # noqa: F401 - the parameters cell's default profile
from functions.engine.conditions import CONDITIONS
from functions.engine.protocol_grid import run_protocols
from functions.engine.protocols import PROTOCOL_VARIANTS, compared_variants
from functions.notebook import check_choices, check_parameters, default_results_dir, executor_for, study_config

# %% tags=["parameters"]
# {{study_parameters}}
variants: Optional[list[str]] = None            # None: all five (`original`, `steps`, `realistic`, `fixed budget`,
                                                # `realistic, tuned lr`); each sets protocol and lr_grid
condition: str = "FR"                           # compared with the baseline at every cut
scheduler_address: str = ""                     # "": worker processes when they pay, else here; "inprocess": here; "local": a LocalCluster; or "tcp://host:8786"

# %%
params = check_parameters(globals())
if params["profile"] != "smoke":  # the shipped protocol grid; smoke keeps the profile's tiny one
    params["percentages"] = params["percentages"] or [0.001, 0.01, 0.1]
    params["repeats"] = params["repeats"] or [16 if f < 0.05 else 8 for f in params["percentages"]]
results_dir = params["results_dir"] or default_results_dir(params["profile"], "results/protocols")
variants = check_choices("variants", params["variants"] or compared_variants(), PROTOCOL_VARIANTS)
check_choices("condition", condition, CONDITIONS)
cfg = study_config(params, results_dir=results_dir)
print(cfg.study_name(), "| baseline vs", condition, "| protocols", variants, "| profile", cfg.profile)
print("fractions", cfg.percentages, "| repeats", cfg.repeats, "| steps", cfg.min_steps, "to", cfg.max_steps,
      "| validation every", cfg.eval_every, "steps")

# %% [markdown]
# ## The grids
# One store per protocol; runs already stored are read, the others trained (the pretrained network is shared).

# %%
rows, walls = run_protocols(cfg, root=".", conditions=("baseline", condition), variants=variants,
                            executor=executor_for(params["scheduler_address"]))
print(len(rows), "runs;", ", ".join(f"{label}: {seconds:.0f} s" for label, seconds in walls.items()),
      "spent in this call")

# %% [markdown]
# ## The gain of each cut under each protocol
# Median over repeats of the paired gain (cut − baseline of the same protocol, in points) with the exact 95 %
# interval that matches the test (Hodges–Lehmann; none below 6 pairs); filled markers and ✓: significant after
# Holm over the cuts of that protocol and fraction (Wilcoxon signed-rank, pairs = repeats). Fractions in per cent.

# %%
gains = transfer_gains(rows)
fig = gain_figure(gains)
figures.save_figure(fig, os.path.join(results_dir, "figures", "protocol_gains"))
with_fraction_labels(summary_frame(gains))

# %% [markdown]
# How much each gain moves from the original protocol to each fair one (`realistic`, and `realistic, tuned lr`),
# paired by repeat, in points as in the verdict; Holm over the (fraction, cut) pairs of one comparison.

# %%
shift = gain_shifts(rows)
shift_table(shift) if len(shift) else "the original protocol and a fair one were not both run"

# %% [markdown]
# ## What each protocol actually trained
# Per protocol and fraction: median labelled images used for training and for validation, the median optimizer
# steps of each arm, and how many runs took fewer than 50 steps (the symptom of an epoch-counted protocol on a
# tiny subset); then, where there are such runs, their median test accuracy next to the others' (`–` where every
# run of that arm took fewer than 50 steps: there is no other run to compare with); and the wall time per
# protocol. `budget_table(rows)` has every median per arm, best step and epochs included.

# %%
with_fraction_labels(budget_overview(rows))

# %%
starved = starved_runs(rows)
with_fraction_labels(starved[starved["starved"] > 0].round(4)).astype(object).fillna("–")

# %%
with_fraction_labels(chosen_learning_rates(rows))  # empty unless "realistic, tuned lr" ran: repeats per chosen rate

# %%
wall_times(rows)

# %% [markdown]
# ## Verdict
# Computed from the tables above.

# %%
display(Markdown(verdict(gains, shift if len(shift) else None)))
