# %% [markdown]
# # Architecture search with Optuna
#
# **Question.** Which CNN choices matter most for accuracy at a given size — depth, width, how filters grow
# (constant / doubling / halving per layer), kernel size per layer, pooling (max / avg / strided conv / none,
# every n layers), activation (ReLU, GELU, SiLU, LeakyReLU, Mish), batch norm, dropout, learning rate — and
# which configuration should the transfer notebooks use?
#
# Optuna's TPE sampler proposes configurations; each trial trains with Adam for a few epochs on a seeded subset
# and reports validation accuracy per epoch, and a median pruner stops trials that fall behind. This replaces
# the original's hosted sweep service and runs offline. The search is reproducible from `seed`. The best trial
# is exported as a `StudyConfig` JSON (`best_config.json`) for the transfer notebooks, mapped to the nearest
# fields; what StudyConfig cannot express is listed in `best_trial.json`.
#
# The search runs on FashionMNIST (the shipped result). `dataset = "CIFAR10"` (or `"MNIST"`) searches another
# dataset when its files are under the data root; its results then go to `results/archsearch/<dataset>/`, still
# in this folder (CIFAR-10 could not be downloaded on the machine that produced the shipped result).

# %%
# %matplotlib inline
import json
import time
from pathlib import Path
from typing import Optional

import matplotlib.pyplot as plt
import torch

from functions.engine.config import profile_from_env
from functions.engine.fileio import atomic_write_csv, atomic_write_text
from functions.engine.networks import CustomCNN
from functions.notebook import check_parameters, default_results_dir
from functions.related import archsearch

# %% tags=["parameters"]
profile: str = profile_from_env("cpu")  # smoke | cpu | paper; default from $TL_STUDY_PROFILE
dataset: str = "FashionMNIST"           # or "CIFAR10" / "MNIST" when their files are under the data root
data_root: Optional[str] = None         # None: $TL_STUDY_DATA, else ./data
results_dir: Optional[str] = None       # None: results/archsearch, another dataset's: results/archsearch/<dataset>
                                        # (smoke runs: results/archsearch/smoke[/<dataset>])
device: str = "cpu"                     # "cpu" or "cuda"
seed: int = 0                           # sampler, weights and batch order: same seed, same search
n_trials: Optional[int] = None          # None: the profile's (cpu: 25)
epochs: Optional[int] = None            # None: the profile's epochs per trial
train_limit: Optional[int] = None       # None: the profile's training subset (cpu: 6,000 images)
threads: int = 2                        # torch CPU threads

# %%
check_parameters(globals())
torch.set_num_threads(threads)
settings = archsearch.profile_settings(profile)
for name, value in dict(n_trials=n_trials, epochs=epochs, train_limit=train_limit).items():
    if value is not None:
        settings[name] = value
own = Path(default_results_dir(profile, "results/archsearch"))  # this folder's results/, never another's
results_dir = Path(results_dir or (own if dataset == "FashionMNIST" else own / dataset))
print(f"{dataset} | profile {profile} | {settings}")

# %% [markdown]
# ## The search

# %%
start = time.perf_counter()
study, split = archsearch.run_search(
    dataset, settings["n_trials"], settings["epochs"], train_limit=settings["train_limit"],
    test_limit=settings["test_limit"], max_depth=settings["max_depth"], widths=settings["widths"],
    kernels=settings["kernels"], max_channels=settings["max_channels"], batch_size=settings["batch_size"],
    seed=seed, data_root=data_root,
    device=device)
search_seconds = time.perf_counter() - start
summary = archsearch.search_summary(study)
print(f"{summary['n_trials']} trials ({summary['complete']} complete, {summary['pruned']} pruned) in "
      f"{search_seconds / 60:.1f} min on {len(split.y_train)} training / {len(split.y_val)} validation images")
table = archsearch.trials_table(study)
table.sort_values("val_acc", ascending=False).round(4)

# %% [markdown]
# ## Accuracy vs parameters, and the search history

# %%
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4))
archsearch.plot_accuracy_vs_parameters(table, ax1)
archsearch.plot_history(table, ax2)
plt.tight_layout()

# %% [markdown]
# ## Which hyperparameters matter
# fANOVA importance over the completed trials (per-layer kernels count only for the layers every trial has).
# With a few dozen trials these are rough: read them as a ranking, not as precise shares.

# %%
importances = archsearch.param_importances(study, seed=seed)
if len(importances):
    archsearch.plot_importances(importances)
importances.round(3)

# %% [markdown]
# ## The best configuration, and its nearest StudyConfig
# Both are retrained once like a trial and tested once on the test split: the gap shows what the mapping to
# StudyConfig's CustomCNN (one width, one kernel, average pooling, no batch norm or dropout) costs.

# %%
best_spec = archsearch.spec_from_params(study.best_params, settings["max_channels"])
config, notes = archsearch.to_study_config(best_spec, dataset)
config.validate(check_data=False)
in_channels, size = split.x_train.shape[1], split.x_train.shape[-1]
torch.manual_seed(seed)
best_model = archsearch.SearchCNN(best_spec, in_channels, size, split.num_classes).to(device)
mapped_model = CustomCNN.from_config(config, in_channels, size, split.num_classes).to(device)
final = {
    "best trial": archsearch.retrain_and_test(best_model, split, best_spec["lr"], settings["epochs"],
                                              settings["batch_size"], seed),
    "as StudyConfig": archsearch.retrain_and_test(mapped_model, split, config.lr_fine_tune, settings["epochs"],
                                                  settings["batch_size"], seed),
}
print("best spec:", best_spec)
print("StudyConfig:", config.model_fields(), "lr", config.lr_fine_tune)
print("cannot express:", *notes, sep="\n  ")
__import__("pandas").DataFrame(final).T.round(4)

# %%
results_dir.mkdir(parents=True, exist_ok=True)
atomic_write_csv(table, results_dir / "trials.csv", index=False)
atomic_write_csv(importances.rename_axis("param").reset_index(), results_dir / "importances.csv", index=False)
config.to_json(results_dir / "best_config.json")
atomic_write_text(results_dir / "best_trial.json", json.dumps(dict(
    dataset=dataset, profile=profile, seed=seed, settings=settings, search_seconds=search_seconds,
    summary=summary, best_spec=best_spec, channels=archsearch.spec_channels(best_spec),
    not_expressible_in_studyconfig=notes, retrained=final), indent=2))
print("wrote", sorted(p.name for p in results_dir.iterdir()), "to", results_dir)
