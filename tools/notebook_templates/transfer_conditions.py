# %% [markdown]
# # Sharper transfer questions: self-transfer controls, surgical fine-tuning, strategies, TTA
#
# The original study asks *transfer A's first k blocks to B*. Here the same engine (same paired balanced subsets
# per fraction × repeat, same seeded heads, same frozen-prefix cache) runs four sharper questions on MNIST
# digits 0–4 (A) → 5–9 (B):
#
# 1. **Self-transfer control** (Yosinski et al. 2014). `BnB`/`BnB+`: blocks `[0, k)` of a network pretrained on
#    **B itself** (B's full training split), frozen / fine-tuned, later blocks re-initialised, next to
#    `AnB`/`AnB+` (the same from A). A BnB dip below the baseline means the cut split co-adapted blocks; AnB
#    below BnB means A's features are too specific to A.
# 2. **Surgical fine-tuning**: the whole A network with a new head, only block k trained; which block wins?
# 3. **Strategies**: from scratch, frozen random features + head (the lower bound), head only on frozen A
#    features, whole network fine-tuned; learning curves of each.
# 4. **Test-time augmentation**: accuracy with and without flip / five-crop averaging.
#
# Results are appended run by run to `results/conditions/*.jsonl` (rerun to resume); tables and figures are
# written next to them.

# %%
import os
from typing import Optional, Union  # noqa: F401 - used by the shared study parameters

from IPython.display import display

from functions.analysis import diagnostics, figures, transfer_conditions
from functions.engine.architectures import block_count
from functions.engine.conditions import STRATEGIES, SURGICAL, YOSINSKI
from functions.engine.config import profile_from_env  # noqa: F401 - the parameters cell's default profile
from functions.engine.fileio import atomic_write_csv
from functions.engine.protocols import variant_of
from functions.engine.study import Study
from functions.notebook import check_choices, check_parameters, default_results_dir, study_config
from functions.related.tta import tta_comparison

# %% tags=["parameters"]
# {{study_parameters}}
architecture: str = "CustomCNN"                 # or "ResNet": depth 3, 5 or 7 conv layers, cuts count blocks
depth: Optional[int] = None                     # None: the profile's depth
questions: list[str] = ["yosinski", "surgical", "strategies", "tta"]  # any subset, in this order
curve_fraction: Optional[float] = None          # fraction of the learning-curve figure; None: the second smallest
tta_fraction: Optional[float] = None            # fraction of the TTA comparison; None: the largest
tta_repeats: int = 1                            # runs retrained per strategy for the TTA comparison

# %%
params = check_parameters(globals())
check_choices("questions", questions, ["yosinski", "surgical", "strategies", "tta"])
results_dir = params["results_dir"] or default_results_dir(params["profile"], "results/conditions")
cfg = study_config(params, results_dir=results_dir, pretrained_dir=os.path.join(results_dir, "pretrained_models"))
print(cfg.study_name(), "|", cfg.architecture, "depth", cfg.depth, f"({block_count(cfg)} blocks)",
      "| profile", cfg.profile, "| protocol", variant_of(cfg).label, "| fractions", cfg.percentages,
      "| repeats", cfg.repeats)
study = Study(cfg, record_history=True)  # rows carry per-epoch train/val loss for the learning curves
_ = study.pretrained
print(f"A network (pretrained on {cfg.pre_train_classes}): test accuracy {study.pretrain_info.get('test_acc', float('nan')):.4f}")

# %% [markdown]
# ## 1. Self-transfer control: AnB, AnB+, BnB, BnB+
#
# Cut 0 with re-initialisation is training from scratch, so every curve starts at the baseline. Error bars:
# bootstrap 95 % CIs of the median over repeats; dashed line and band: the baseline.

# %%
if "yosinski" in questions:
    _ = study.pretrained_b
    print(f"B network (pretrained on {cfg.fine_tune_classes}): test accuracy "
          f"{study.pretrain_info_b.get('test_acc', float('nan')):.4f}")
    df_y = study.run(("baseline", *YOSINSKI))
    by_cut = transfer_conditions.accuracy_by_cut(df_y)
    display(by_cut.pivot_table(index=["fraction", "cut"], columns="condition", values="median").round(4))

# %%
if "yosinski" in questions:
    fig_y = transfer_conditions.yosinski_plot(transfer_conditions.with_baseline_at_cut0(df_y))

# %% [markdown]
# Paired effect of each condition and cut against the baseline on the same subsets (median difference, bootstrap
# CI, Wilcoxon p Holm-corrected over the cuts of one condition).

# %%
if "yosinski" in questions:
    effects = transfer_conditions.effects_vs_baseline(df_y)
    display(effects.round(4))

# %% [markdown]
# ## 2. Surgical fine-tuning
#
# The whole A network with a new head; only block k (and the head) trains, all other blocks are frozen. `head
# only` trains the head alone. Rank group `a`: the best block and every block not significantly worse (paired
# Wilcoxon, Holm).

# %%
if "surgical" in questions:
    df_s = study.run((SURGICAL,))
    surgical = transfer_conditions.surgical_summary(df_s)
    display(surgical.pivot_table(index="fraction", columns="tuned", values="median").round(4))
    display(transfer_conditions.best_blocks(surgical))

# %% [markdown]
# ## 3. Fine-tuning strategies and learning curves

# %%
if "strategies" in questions:
    df_t = study.run(STRATEGIES)
    strategies = transfer_conditions.strategy_summary(df_t)
    display(strategies[["fraction", "strategy", "n", "median", "low", "high", "group_label",
                        "diff_vs_baseline", "p_holm_vs_baseline"]].round(4))

# %%
if "strategies" in questions:
    curve_fraction = curve_fraction or sorted(cfg.percentages)[min(1, len(cfg.percentages) - 1)]
    curves = transfer_conditions.curves_at(df_t, curve_fraction)
    fig_c = diagnostics.learning_curves(curves)
    fig_c.suptitle(f"{cfg.study_name()}: strategies at fraction {curve_fraction:g} (repeat 0)")

# %% [markdown]
# ## 4. Test-time augmentation
#
# Head-only and whole-network fine-tuned models are retrained with the grid's seeds (the `none` column
# reproduces the stored accuracy) and evaluated without TTA, with horizontal-flip averaging and with five-crop
# averaging (centre + four corners of the zero-padded image; softmax scores averaged). Digits are not
# mirror-symmetric, so flips are expected to hurt on MNIST; the same code runs on CIFAR-format data
# (`source_dataset = target_dataset = "CIFAR10"`).

# %%
if "tta" in questions:
    tta_fraction = tta_fraction or max(cfg.percentages)
    tta = tta_comparison(study, ["head_only", "full_finetune"], tta_fraction, range(tta_repeats))
    display(tta.pivot_table(index=["condition", "repeat"], columns="tta", values="test_acc").round(4))

# %%
os.makedirs(cfg.results_dir, exist_ok=True)
written = [study.store.path]
def save(frame, name):
    path = os.path.join(cfg.results_dir, name)
    atomic_write_csv(frame, path, index=False)
    written.append(path)
if "yosinski" in questions:
    save(by_cut, "yosinski_accuracy_by_cut.csv"); save(effects, "yosinski_effects.csv")
    written += figures.save_figure(fig_y, os.path.join(cfg.results_dir, "yosinski"))
if "surgical" in questions:
    save(surgical, "surgical_summary.csv")
if "strategies" in questions:
    save(strategies, "strategies_summary.csv")
    written += figures.save_figure(fig_c, os.path.join(cfg.results_dir, "learning_curves"))
if "tta" in questions:
    save(tta, "tta.csv")
print(*written, sep="\n")
