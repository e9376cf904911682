"""The results row: one finished run, one line of a results store (CONTRIBUTING.md, "Results row").

The engine writes rows through :func:`results_row`; ``functions.analysis.results`` reads every source
(our stores and the original study's files) into frames whose first columns are :data:`ROW_COLUMNS`.
Standard library only.
"""
from __future__ import annotations

from typing import Any

# Every row has these, in this order (rows read from the original study's files fill the ones they lack
# with None); ``history`` only when the run recorded per-epoch curves.
ROW_COLUMNS = [
    "key", "study", "source_dataset", "target_dataset", "pretrain_classes", "finetune_classes",
    "condition", "freeze", "reinit", "truncate", "fraction", "cut", "repeat", "seed", "lr",
    "depth", "num_channels", "kernel_size", "activation", "pooling", "n_train",
    "train_acc", "val_acc", "test_acc", "epochs", "seconds", "history",
]
# The engine's rows carry these too: how the run was made (protocol, budget used) and where.
ENGINE_COLUMNS = [
    "init", "protocol_variant", "protocol", "lr_grid", "patience", "batch_size", "min_steps", "max_steps",
    "max_epochs", "eval_every", "evals_per_epoch", "subset_val_fraction", "n_val", "best_epoch", "steps",
    "best_step", "profile", "device", "config_hash", "finished_at",
]
OPTIONAL_COLUMNS = ("history",)


def results_row(**values: Any) -> dict[str, Any]:
    """A row of the engine in schema order; a missing or unknown column is a ValueError naming it."""
    allowed = ROW_COLUMNS + ENGINE_COLUMNS
    unknown = sorted(set(values) - set(allowed))
    missing = [c for c in allowed if c not in values and c not in OPTIONAL_COLUMNS]
    if unknown or missing:
        raise ValueError(f"results row: unknown columns {unknown}, missing columns {missing}; "
                         "the schema is functions.engine.schema.ROW_COLUMNS + ENGINE_COLUMNS")
    return {c: values[c] for c in allowed if c in values}
