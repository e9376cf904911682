# %% [markdown]
# # A compact MNIST network: under 8,000 parameters, ≥ 99.4 % test accuracy
#
# **Question.** Can a CNN with fewer than 8,000 parameters reach ≥ 99.4 % MNIST test accuracy in each of the
# last 3 of at most 15 epochs, on a 2-core CPU — and how does StepLR compare with OneCycleLR for it?
#
# The design (the reference reached 99.45 % with 6,084 parameters): 3×3 convolutions with BatchNorm, a 1×1
# transition after the first max-pool, global average pooling and a 1×1 classifier; SGD with momentum 0.9;
# light rotation (±7°) and shift (±4 %, about 1 px) augmentation applied to whole batches on tensors
# (`affine_grid`/`grid_sample`). Dropout is a parameter (`dropout`, default 0): with 5 % channel dropout and
# ±7 % shifts this 7k-parameter net under-fitted (97.8 % training accuracy) and stopped at 99.37 %. The target
# is judged on the test set after every epoch, as in the reference;
# the schedule is fixed, so nothing is selected on the test set.

# %%
# %matplotlib inline
import json
import time
from pathlib import Path
from typing import Optional

import pandas as pd
import torch
from torchinfo import summary

from functions.engine.config import profile_from_env
from functions.engine.data import load_dataset, normalize
from functions.engine.fileio import atomic_torch_save, atomic_write_csv, atomic_write_text
from functions.engine.networks import count_parameters
from functions.engine.training import class_accuracies, predict
from functions.notebook import check_parameters, default_results_dir
from functions.related import compact

# %% tags=["parameters"]
profile: str = profile_from_env("cpu")  # smoke | cpu | paper; default from $TL_STUDY_PROFILE
data_root: Optional[str] = None         # None: $TL_STUDY_DATA, else ./data
results_dir: Optional[str] = None       # None: results/compact (smoke runs: results/compact/smoke)
device: str = "cpu"                     # "cpu" or "cuda"
seed: int = 0
epochs: Optional[int] = None            # None: the profile's (cpu: 15)
lr: float = 0.05                        # SGD lr (StepLR start; OneCycleLR peaks at 2×lr)
scheduler: str = "onecycle"             # main model: "onecycle" or "step"
compare_schedulers: bool = True         # also train with the other scheduler
dropout: float = 0.0                    # channel dropout after each 3×3 conv
max_shift: float = 0.04                 # random shift, fraction of the image width (rotation is ±7°)
threads: int = 2                        # torch CPU threads

# %%
check_parameters(globals())
torch.set_num_threads(threads)
settings = compact.profile_settings(profile)
epochs = epochs or settings["epochs"]
results_dir = Path(results_dir or default_results_dir(profile, "results/compact"))
raw = load_dataset("MNIST", data_root)
n_train = settings["train_limit"] or len(raw.y_train)
n_test = settings["test_limit"] or len(raw.y_test)
x_train, y_train = normalize(raw.x_train[:n_train], raw.mean, raw.std), raw.y_train[:n_train]
x_test, y_test = normalize(raw.x_test[:n_test], raw.mean, raw.std), raw.y_test[:n_test]
background = (0.0 - raw.mean[0]) / raw.std[0]  # value of an empty pixel after normalisation
print(f"{n_train} training / {n_test} test images | {epochs} epochs | profile {profile}")

# %% [markdown]
# ## The network: layers, output shapes, parameters

# %%
model = compact.CompactNet()
n_params = count_parameters(model, trainable_only=True)
print(f"{n_params:,} trainable parameters (limit {compact.PARAMETER_LIMIT:,})")
summary(model, input_size=(1, 1, 28, 28), col_names=("output_size", "num_params", "kernel_size"),
        row_settings=("var_names",), depth=3, verbose=0)

# %% [markdown]
# ## Receptive field per layer
# Computed from the layer specs with `n_out = ⌊(n_in + 2p − k)/s⌋ + 1`, `jump_out = jump_in·s`,
# `RF_out = RF_in + (k − 1)·jump_in` (global average pooling spans what reaches it).

# %%
rf_table = compact.receptive_field_table(compact.layer_specs(model), 28)
rf_table

# %% [markdown]
# ## Training: OneCycleLR and StepLR (SGD, momentum 0.9)
# The main model uses `scheduler`; with `compare_schedulers` the other one is trained from the same seed.

# %%
names = {"onecycle": "OneCycleLR", "step": "StepLR"}
order = [scheduler] + ([s for s in names if s != scheduler] if compare_schedulers else [])
histories, models, seconds = {}, {}, {}
for kind in order:
    run_epochs = epochs if kind == scheduler else settings["compare_epochs"]
    start = time.perf_counter()
    models[names[kind]], histories[names[kind]] = compact.train_compact(
        x_train, y_train, x_test, y_test, epochs=run_epochs, scheduler=kind, lr=lr,
        batch_size=settings["batch_size"], seed=seed, fill=background, dropout=dropout, max_shift=max_shift,
        device=device)
    seconds[names[kind]] = time.perf_counter() - start
    h = histories[names[kind]]
    print(f"{names[kind]}: {seconds[names[kind]] / 60:.1f} min wall; last 3 epochs "
          f"{h['test_acc'].tail(3).round(4).tolist()}; target met: {compact.meets_target(h)}")
main = names[scheduler]
comparison = pd.DataFrame([dict(
    scheduler=name, parameters=n_params, epochs=len(h), final_test_acc=h["test_acc"].iloc[-1],
    min_last3_test_acc=h["test_acc"].tail(3).min(), best_test_acc=h["test_acc"].max(),
    meets_target=compact.meets_target(h), wall_minutes=seconds[name] / 60) for name, h in histories.items()])
comparison.round(4)

# %%
pd.concat(histories.values()).round(4)

# %% [markdown]
# ## Loss and accuracy curves

# %%
compact.plot_learning_curves(histories);

# %% [markdown]
# ## Per-class accuracy over the whole test set (main model)
# Every test image counts (the reference looked only at the first 10 images of each batch).

# %%
per_class = class_accuracies(y_test, predict(models[main], x_test), raw.classes)
compact.plot_per_class(per_class)
per_class.round(4)

# %% [markdown]
# ## Misclassified test images (main model)

# %%
images, true, pred = compact.misclassified(models[main], x_test, y_test, limit=32)
print(f"{int(per_class['n'].sum() - per_class['correct'].sum())} of {len(y_test)} test images wrong")
compact.plot_misclassified(images, true, pred, raw.classes);

# %%
results_dir.mkdir(parents=True, exist_ok=True)
atomic_write_csv(pd.concat(histories.values()), results_dir / "history.csv", index=False)
atomic_write_csv(comparison, results_dir / "comparison.csv", index=False)
atomic_write_csv(per_class, results_dir / "per_class_accuracy.csv", index=False)
atomic_write_csv(rf_table, results_dir / "receptive_field.csv", index=False)
atomic_torch_save(models[main].state_dict(), results_dir / f"compact_{scheduler}.pt")
atomic_write_text(results_dir / "summary.json", json.dumps(dict(
    profile=profile, seed=seed, epochs=epochs, lr=lr, main_scheduler=main, dropout=dropout,
    max_shift=max_shift, parameters=n_params, n_train=n_train, n_test=n_test,
    threads=threads, device=device, wall_seconds=seconds,
    last3_test_acc={k: h["test_acc"].tail(3).tolist() for k, h in histories.items()},
    meets_target={k: compact.meets_target(h) for k, h in histories.items()}), indent=2))
print("wrote", sorted(p.name for p in results_dir.iterdir()), "to", results_dir)
