"""Protocol variants: the one registry of how fine-tuning runs are trained, and the protocol study.

A variant is a named set of config fields (``protocol``, ``subset_val_fraction``, ``lr_grid``). The engine
writes each run's variant label into its row (:func:`variant_of`), and the analysis reads that column,
so the label is decided here and nowhere else. The protocol-sensitivity study runs the same grid under
each variant marked ``compared`` (each with its own store: every protocol field is in the fingerprint); ``protocol_grid.run_protocols``
runs it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from .config import TUNED_LR_GRID, StudyConfig


@dataclass(frozen=True)
class ProtocolVariant:
    """One way of fine-tuning: its label, the config fields that make it, and how it is shown."""

    label: str
    fields: dict[str, Any]
    fair: bool  # a step budget and validation on the run's own labels (no labels outside the fraction)
    description: str
    color: str
    linestyle: str
    compared: bool = True  # one of the protocol-sensitivity study's variants
    uses_validation: bool = True

    @property
    def tuned(self) -> bool:
        """Whether each arm picks its own learning rate."""
        return self.fields.get("lr_grid") is not None

    def config(self, cfg: StudyConfig) -> StudyConfig:
        """``cfg`` trained under this variant (every other field unchanged)."""
        base = dict(protocol="original", subset_val_fraction=cfg.subset_val_fraction, lr_grid=None)
        if base["subset_val_fraction"] == 0:
            base["subset_val_fraction"] = StudyConfig.subset_val_fraction  # a validating variant needs one
        base.update(self.fields)
        return cfg.replace(**base)


def _variants(*records: ProtocolVariant) -> dict[str, ProtocolVariant]:
    return {v.label: v for v in records}


PROTOCOL_VARIANTS: dict[str, ProtocolVariant] = _variants(  # colours: colour-blind-safe Okabe–Ito
    ProtocolVariant("original", dict(protocol="original"), fair=False,
                    description="epochs; validation on the whole training split (the seed study's)",
                    color="#E69F00", linestyle="--"),
    ProtocolVariant("steps", dict(protocol="steps"), fair=False,
                    description="a step budget; validation still on the whole training split",
                    color="#56B4E9", linestyle="-"),
    ProtocolVariant("realistic", dict(protocol="realistic"), fair=True,
                    description="a step budget; validation carved from the run's own labelled images; one lr",
                    color="#009E73", linestyle="-"),
    ProtocolVariant("fixed budget", dict(protocol="realistic", subset_val_fraction=0.0), fair=False,
                    description="exactly min_steps steps on all labelled images, last state kept; one lr",
                    color="#CC79A7", linestyle=":", uses_validation=False),
    ProtocolVariant("realistic, tuned lr", dict(protocol="realistic", lr_grid=TUNED_LR_GRID), fair=True,
                    description="realistic, and every arm picks its lr on its own carved validation split",
                    color="#0072B2", linestyle="-."),
    # Combinations a user may configure; not part of the protocol comparison.
    ProtocolVariant("original, tuned lr", dict(protocol="original", lr_grid=TUNED_LR_GRID), fair=False,
                    description="original, each arm picking its lr on the whole validation split",
                    color="#D55E00", linestyle="--", compared=False),
    ProtocolVariant("steps, tuned lr", dict(protocol="steps", lr_grid=TUNED_LR_GRID), fair=False,
                    description="steps, each arm picking its lr on the whole validation split",
                    color="#999999", linestyle="-", compared=False),
)
# The repository's default (the cpu and smoke profiles): the fair variant.
DEFAULT_VARIANT = "realistic, tuned lr"


def _signature(protocol: str, subset_val_fraction: float, lr_grid) -> tuple[str, bool, bool]:
    """What tells variants apart: the protocol, whether validation is carved away, whether lr is tuned."""
    no_validation = protocol == "realistic" and subset_val_fraction == 0
    return protocol, no_validation, lr_grid is not None


def variant_of(cfg: StudyConfig) -> ProtocolVariant:
    """The registered variant ``cfg`` trains under (the label every row of its store carries)."""
    wanted = _signature(cfg.protocol, cfg.subset_val_fraction, cfg.lr_grid)
    for variant in PROTOCOL_VARIANTS.values():
        f = variant.fields
        if _signature(f["protocol"], f.get("subset_val_fraction", 0.2), f.get("lr_grid")) == wanted:
            return variant
    raise ValueError(f"no registered protocol variant has protocol={cfg.protocol!r}, subset_val_fraction="
                     f"{cfg.subset_val_fraction!r}, lr_grid={cfg.lr_grid!r}; registered: {list(PROTOCOL_VARIANTS)}")


def fair_variants() -> list[str]:
    """Labels of the fair compared variants (the verdicts' "does the gain survive" protocols)."""
    return [label for label, v in PROTOCOL_VARIANTS.items() if v.fair and v.compared]


def compared_variants() -> list[str]:
    """Labels of the protocol comparison, in display order."""
    return [label for label, v in PROTOCOL_VARIANTS.items() if v.compared]


def protocol_configs(cfg: StudyConfig, variants: Iterable[str] | None = None) -> dict[str, StudyConfig]:
    """One config per protocol variant (label → config; default: every compared one)."""
    labels = compared_variants() if variants is None else list(variants)
    unknown = [v for v in labels if v not in PROTOCOL_VARIANTS]
    if unknown:
        raise ValueError(f"protocol variant(s) {unknown} unknown; allowed: {list(PROTOCOL_VARIANTS)}")
    return {label: PROTOCOL_VARIANTS[label].config(cfg) for label in labels}
