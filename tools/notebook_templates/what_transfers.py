# Template of MNIST/what_transfers.ipynb (runnable for any folder's setting with papermill parameters).

# %% [markdown]
# # What transfers: reused features or well-scaled weights? {{title}}
#
# **Question.** Keeping *k* pretrained blocks beats training from scratch with little data — but is that the
# pretrained *features*, or only weights of a good *scale*? Raghu et al. (2019, "Transfusion") found that a
# random initialisation drawn with each pretrained layer's weight mean and variance recovers much of what
# pretrained weights give; Neyshabur et al. (2020) separate feature reuse from low-level statistics by
# shuffling blocks of the target images. Four controls, on the same paired subsets and fresh weights as FR:
#
# * **stats_FR**: blocks `[0, k)` re-drawn i.i.d. with each pretrained layer's weight mean and standard deviation
#   (weights and biases alike), frozen — the statistics of the pretrained blocks without their structure;
# * **stats_UR**: the same blocks fine-tuned;
# * **shuffled_FR**: each pretrained layer's weights permuted across filters and positions (the same values,
#   exactly), frozen;
# * **block-shuffled images**: every fine-tuning image (train, validation and test) cut into a 4 × 4 grid of
#   7 × 7 blocks, permuted by one fixed permutation; FR vs the baseline there. The shuffle destroys the layout
#   of the image across blocks but keeps what lies inside one block (stroke pieces, edges): a gain that
#   survives it rests on local features or on statistics, not on the global shape of the image.
#
# The gain of cut *k* splits repeat by repeat into a **statistics part** (stats_FR − baseline) and a **feature
# part** (FR − stats_FR). Every difference is paired by repeat; exact Wilcoxon signed-rank tests, Holm over
# every comparison of one fraction.

# %%
from typing import Optional, Union  # noqa: F401 - used by the shared study parameters

from functions.analysis import power, what_transfers
from functions.analysis.findings_format import fraction_text, md_table
from functions.analysis.labels import protocol_text, repeats_text
from functions.engine.config import profile_from_env  # noqa: F401 - the parameters cell's default profile
from functions.engine.protocols import variant_of
from functions.engine.study import Study
from functions.notebook import check_parameters, executor_for, study_config

# %% tags=["parameters"]
# {{study_parameters}}
block_grid: int = 4                             # block-shuffled images: a block_grid × block_grid grid (0: skip)
scheduler_address: str = ""                     # "": worker processes when they pay, else here; "inprocess": here; "local": a LocalCluster; or "tcp://host:8786"

# %%
params = check_parameters(globals())
cfg = study_config(params)
print(cfg.study_name(), "| profile", cfg.profile, "| protocol", variant_of(cfg).label,
      "| fractions", cfg.percentages, "| repeats", cfg.repeats)

# %% [markdown]
# ## The grids
# The study's own store (baseline, FR and the three weight controls at every cut) and, for the image control,
# the same study on block-shuffled images (a store of its own). Runs already stored are read, the others trained.

# %%
executor = executor_for(params["scheduler_address"])
study = Study(cfg)
df = study.run(("baseline", "FR", "stats_FR", "shuffled_FR", "stats_UR"), executor=executor)
shuffled = None
if params["block_grid"]:
    shuffled = Study(cfg.replace(target_block_shuffle=params["block_grid"])).run(("baseline", "FR"),
                                                                               executor=executor)
print(cfg.study_name(), "|", protocol_text(df), "|", repeats_text(df))

# %% [markdown]
# ## The decomposition
# Median paired differences in points of test accuracy, with the Hodges–Lehmann shift and its exact 95 %
# interval; ✓ = Holm p < 0.05 over every comparison of the fraction.

# %%
table = what_transfers.decomposition(df, shuffled_images=shuffled)
shown = table.assign(fraction=table["fraction"].map(fraction_text),
                     median=(100 * table["median_diff"]).map("{:+.1f}".format),
                     CI=[f"[{100 * lo:+.1f}, {100 * hi:+.1f}]" if lo == lo else "n too small"
                         for lo, hi in zip(table["low"], table["high"])],
                     holm_p=table["p_holm"].map("{:.3f}".format), ok=table["significant"].map({True: "✓", False: ""}))
print(md_table(shown[["fraction", "cut", "component", "n_pairs", "median", "CI", "holm_p", "ok"]].astype(str)))

# %% [markdown]
# ## One figure
# Per fraction, bars per cut: the total gain, the part statistics-matched blocks reach and the part only the
# real features reach (and the controls that destroy structure). Filled bars are Holm-significant.

# %%
what_transfers.decomposition_figure(table);

# %% [markdown]
# ## Verdict (computed from the table above, at the deepest cut)

# %%
print(what_transfers.verdict(table))
what_transfers.shares(table).round(3)

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
