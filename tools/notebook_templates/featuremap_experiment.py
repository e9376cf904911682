# %% [markdown]
# # Feature-map training: does a CNN trained on another CNN's feature maps still classify images?
#
# **Question.** Train m1 on images. Turn each of its first-layer feature maps (24×24, one per channel) into a
# one-channel training image with its image's label. Train m2 — m1's layers, padding 2 on the first conv so
# 24×24 inputs fit, starting from m1's weights — on those maps, then put m2's weights back into m1's shape and
# test on the original 28×28 images. How accurate is m2-in-m1, and is it more robust to FGSM attacks than m1?
#
# The original study reported test accuracy MNIST 98.13 % → 94.34 % and FashionMNIST 71.69 % → 72.78 % (m1 →
# m2-in-m1), and FGSM accuracy at ε = 0.25 on MNIST of 10.76 % (m1) vs 23.82 % (m2-in-m1).
#
# m1: conv5×5(1→15) → max-pool → ReLU → conv5×5(15→30) → max-pool → ReLU → linear(→64) → ReLU → linear(→10).
# The maps are **streamed**: each step computes the maps of one image batch from m1's frozen first conv and
# trains on them, so at most one batch of maps exists (all maps of MNIST would be 900,000 images).
# ε is in pixel units (images in [0, 1]); adversarial images are clamped to valid pixels.
# Set `dataset = "FashionMNIST"` to run the same experiment there.

# %%
# %matplotlib inline
import json
import time
from pathlib import Path
from typing import Optional

import matplotlib.pyplot as plt
import pandas as pd
import torch

from functions.engine.config import profile_from_env
from functions.engine.data import load_dataset, normalize
from functions.engine.fileio import atomic_write_csv, atomic_write_text
from functions.notebook import check_parameters, default_results_dir
from functions.related import featuremaps as fm

# %% tags=["parameters"]
profile: str = profile_from_env("cpu")  # smoke | cpu | paper; default from $TL_STUDY_PROFILE
dataset: str = "MNIST"                  # "MNIST" or "FashionMNIST"
data_root: Optional[str] = None         # None: $TL_STUDY_DATA, else ./data
results_dir: Optional[str] = None       # None: results/featuremaps, another dataset's: results/featuremaps/<dataset>
                                        # (smoke runs: results/featuremaps/smoke[/<dataset>])
device: str = "cpu"                     # "cpu" or "cuda"
seed: int = 0
sum_channels: bool = False              # True: one map per image, its channels summed
keep_fraction: Optional[float] = None   # None: the profile's share of maps kept (cpu: all)
m1_epochs: Optional[int] = None         # None: the profile's
m2_epochs: Optional[int] = None         # None: the profile's (epochs over all maps)
lr: float = 1e-3                        # Adam, both models
threads: int = 2                        # torch CPU threads

# %%
check_parameters(globals())
torch.set_num_threads(threads)
settings = fm.profile_settings(profile)
for name, value in dict(keep_fraction=keep_fraction, m1_epochs=m1_epochs, m2_epochs=m2_epochs).items():
    if value is not None:
        settings[name] = value
own = Path(default_results_dir(profile, "results/featuremaps"))  # this folder's results/, never another's
results_dir = Path(results_dir or (own if dataset == "MNIST" else own / dataset))
raw = load_dataset(dataset, data_root)
n_train = settings["train_limit"] or len(raw.y_train)
n_test = settings["test_limit"] or len(raw.y_test)
x_train, y_train = normalize(raw.x_train[:n_train], raw.mean, raw.std), raw.y_train[:n_train]
x_test, y_test = normalize(raw.x_test[:n_test], raw.mean, raw.std), raw.y_test[:n_test]
torch.manual_seed(seed)
print(f"{dataset}: {n_train} training / {n_test} test images | profile {profile} | {settings}")

# %% [markdown]
# ## m1 on the images

# %%
m1 = fm.FeatureMapNet()
start = time.perf_counter()
m1_history = fm.train_classifier(m1, x_train, y_train, settings["m1_epochs"], lr, settings["batch_size"],
                                 seed, device)
m1_seconds = time.perf_counter() - start
print(f"m1 trained in {m1_seconds:.0f} s")
m1_history

# %% [markdown]
# ## The training maps of one image
# m1's first conv turns one 28×28 image into 15 maps of 24×24; each becomes a training image for m2 with the
# image's label.

# %%
with torch.no_grad():
    maps = m1.conv1(x_train[:1].to(device)).cpu()[0]
fig, axes = plt.subplots(2, 8, figsize=(12, 3.2))
axes.flat[0].imshow(x_train[0, 0], cmap="gray")
axes.flat[0].set_title(f"image ({raw.classes[y_train[0]]})", fontsize=8)
for i, ax in enumerate(axes.flat[1:]):
    ax.imshow(maps[i], cmap="gray")
    ax.set_title(f"map {i}", fontsize=8)
for ax in axes.flat:
    ax.axis("off")
plt.tight_layout()

# %% [markdown]
# ## m2 on m1's feature maps (streamed), weights back into m1's shape

# %%
m2 = fm.with_first_padding(m1, 2)  # same weights, first conv padded so 24×24 maps fit
n_maps = fm.count_maps(n_train, m1.conv1.out_channels, settings["image_batch_size"], sum_channels,
                       settings["keep_fraction"])
print(f"{n_maps:,} maps per epoch, at most "
      f"{settings['image_batch_size'] * (1 if sum_channels else m1.conv1.out_channels)} in memory at once")
start = time.perf_counter()
m2_history = fm.train_on_feature_maps(m2, m1.conv1, x_train, y_train, settings["m2_epochs"], lr,
                                      settings["image_batch_size"], sum_channels, settings["keep_fraction"],
                                      seed, device)
m2_seconds = time.perf_counter() - start
m2_in_m1 = fm.with_first_padding(m2, 0)  # m1's shape: evaluated on the original 28×28 images
print(f"m2 trained in {m2_seconds:.0f} s")
m2_history

# %% [markdown]
# ## Clean accuracy: m1 vs m2-in-m1

# %%
models = {"m1": m1, "m2-in-m1": m2_in_m1}
accuracy = fm.accuracy_table(models, {"train": (x_train, y_train), "test": (x_test, y_test)})
accuracy.insert(0, "dataset", dataset)
reference = fm.REFERENCE.get(dataset, {})
accuracy["reference"] = [reference.get(f"{m} {s}") for m, s in zip(accuracy["model"], accuracy["split"])]
accuracy.pivot(index="model", columns="split", values=["accuracy", "reference"]).round(4)

# %% [markdown]
# ## FGSM robustness
# Accuracy on the test images after one fast-gradient-sign step of size ε (pixel units) against each model.

# %%
robustness = fm.robustness_table(models, x_test, y_test, settings["epsilons"], raw.mean, raw.std)
robustness.insert(0, "dataset", dataset)
ax = robustness.pivot(index="epsilon", columns="model", values="accuracy").plot(marker="o", figsize=(6, 4))
for name, key in (("m1", "m1 FGSM 0.25"), ("m2-in-m1", "m2-in-m1 FGSM 0.25")):
    if key in reference:
        ax.scatter([0.25], [reference[key]], marker="*", s=120, label=f"{name} (original)")
ax.set(xlabel="ε (pixel units)", ylabel="test accuracy under FGSM", title=f"FGSM on {dataset}")
ax.legend()
robustness.pivot(index="epsilon", columns="model", values="accuracy").round(4)

# %%
results_dir.mkdir(parents=True, exist_ok=True)
atomic_write_csv(accuracy, results_dir / "accuracy.csv", index=False)
atomic_write_csv(robustness, results_dir / "robustness.csv", index=False)
atomic_write_csv(pd.concat([m1_history.assign(model="m1"), m2_history.assign(model="m2")]),
                 results_dir / "history.csv", index=False)
summary = dict(dataset=dataset, profile=profile, seed=seed, sum_channels=sum_channels, settings=settings,
               n_train=n_train, n_test=n_test, maps_per_epoch=n_maps, m1_seconds=m1_seconds,
               m2_seconds=m2_seconds, reference=reference,
               test_accuracy={m: float(accuracy.query("model == @m and split == 'test'")["accuracy"].iloc[0])
                              for m in models})
atomic_write_text(results_dir / "summary.json", json.dumps(summary, indent=2))
print("wrote", sorted(p.name for p in results_dir.iterdir()), "to", results_dir)
