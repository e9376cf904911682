"""Errors every layer may raise or catch (standard library only)."""
from __future__ import annotations


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the field and the allowed values."""
