# %% [markdown]
# # Where does class structure appear? Layer-wise clustering: {{title}}
#
# **Question.** At which block do the activations of the *fine-tuning* classes separate into clusters — before
# any fine-tuning (pretrained network) and after fine-tuning the whole network? Each block's activations (global
# average pooled) are clustered with agglomerative (cosine, average linkage) and k-means clustering, k = number
# of classes, over fractions × repeats of the test split; metrics: ARI, Hungarian-matched accuracy, pairwise
# precision/recall. Beyond the original study: a linear probe per layer, and linear CKA between the pretrained
# and the fine-tuned network.

# %%
import os
from typing import Optional, Union  # noqa: F401 - used by the shared study parameters

import pandas as pd

from functions.analysis import clustering, figures
from functions.engine.conditions import RunSpec
from functions.engine.config import profile_from_env  # noqa: F401 - the parameters cell's default profile
from functions.engine.fileio import atomic_write_csv
from functions.engine.protocols import variant_of
from functions.engine.study import Study
from functions.notebook import check_parameters, study_config

# %% tags=["parameters"]
# {{study_parameters}}
cluster_fractions: Optional[list[float]] = None  # None: the profile's fractions of the test split (smoke: all)
cluster_repeats: int = 3
methods: list[str] = ["agglomerative", "kmeans"]
per_channel: bool = False                       # also cluster each channel's maps (slow on big models)
max_samples: int = 2000                         # cap on clustered images per subset (agglomerative is O(n²))
finetune_fraction: float = 0.1                  # data used to fine-tune the whole network for comparison

# %%
params = check_parameters(globals())
cfg = study_config(params)
print(cfg.study_name(), "| condition", cfg.condition, "| profile", cfg.profile, "| protocol", variant_of(cfg).label)

# %%
study = Study(cfg)
pretrained = study.pretrained
# fine-tune the whole pretrained network (condition U at cut = depth) on one subset
spec = RunSpec("U", finetune_fraction, cfg.depth, 0)
finetuned, result = study.train(spec)
print(f"fine-tuned test accuracy: {result['test_acc']:.4f}")

# %%
x, y = study.target.x_test, study.target.y_test
# smoke test splits are too small for ≥ 10 images per class in a fraction of them
fractions = cluster_fractions or ([1.0] if cfg.profile == "smoke" else cfg.percentages)
frames = []
for name, net in (("pretrained", pretrained), ("finetuned", finetuned)):
    part = clustering.cluster_study(net, x, y, fractions, cluster_repeats, methods=methods,
                                    per_channel=per_channel, seed=cfg.seed, max_samples=max_samples,
                                    dataset=cfg.target_dataset, split="test")
    frames.append(part.assign(model=name))
cdf = pd.concat(frames, ignore_index=True)
cdf.groupby(["model", "method", "layer"], sort=False)[["ari", "accuracy"]].median().round(3)

# %%
figures.use_style()
fig = figures.box_clustering(cdf[(cdf.model == "pretrained") & (cdf.method == "agglomerative")], metric="ari")

# %% [markdown]
# Linear probe accuracy per layer (held-out 30 %) and CKA similarity of each layer before vs after fine-tuning.

# %%
probes = pd.concat([clustering.probe_study(net, x, y, seed=cfg.seed).assign(model=name)
                    for name, net in (("pretrained", pretrained), ("finetuned", finetuned))])
cka = clustering.cka_by_layer(pretrained, finetuned, x[:max_samples])
probes.pivot(index="layer", columns="model", values="accuracy").join(cka.set_index("layer")).round(3)

# %%
out = os.path.join(cfg.results_dir, "clustering")
os.makedirs(out, exist_ok=True)
atomic_write_csv(cdf, os.path.join(out, f"clustering_{cfg.target_dataset}.csv"), index=False)
atomic_write_csv(probes, os.path.join(out, f"probes_{cfg.target_dataset}.csv"), index=False)
atomic_write_csv(cka, os.path.join(out, f"cka_{cfg.target_dataset}.csv"), index=False)
print(out)
