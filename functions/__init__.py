"""Layer-wise transfer-learning study: configuration, data, models, training, grids and analysis.

One module per concern (see CONTRIBUTING.md):
config, data, models, training, store, experiments, results, stats, clustering, plots, widgets.
"""
from .config import ConfigError, StudyConfig, profile_from_env

from . import controls  # noqa: E402,F401  registers AnB/BnB/surgical/strategy conditions

__all__ = ["ConfigError", "StudyConfig", "profile_from_env"]
__version__ = "0.1.0"
