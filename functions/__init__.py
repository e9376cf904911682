"""Layer-wise transfer-learning study, in three layers whose imports only point downwards.

* ``functions.engine`` — configuration, data, networks, transfer conditions, training, results stores and
  the :class:`~functions.engine.study.Study` that runs a grid. Never plots; imports nothing above it.
* ``functions.analysis`` — reads results stores into tidy frames: statistics, tables, figures, clustering,
  the results explorer. Never trains; imports the engine.
* ``functions.related`` — side experiments that train their own networks (compact model, feature maps,
  architecture search, test-time augmentation); imports the engine only.

``functions.notebook`` is the notebooks' glue (papermill parameters → StudyConfig); it imports the engine.
See CONTRIBUTING.md for the module contracts.
"""
from .engine.config import ConfigError, StudyConfig, profile_from_env

__all__ = ["ConfigError", "StudyConfig", "profile_from_env"]
__version__ = "0.1.0"
