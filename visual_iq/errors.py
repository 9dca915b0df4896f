"""The package's error types: bad input that the CLI and tools report as one line, no traceback.

Every message names the offending file or value. Anything else that goes wrong is a bug and
keeps its traceback.
"""

from __future__ import annotations


class VisualIQError(ValueError):
    """Input visual-iq cannot use (a file, a setting, a checkpoint); the message says which."""


class EnvSettingsError(VisualIQError):
    """Env settings that cannot be used, or that do not match the ones asked for."""


class DemoError(VisualIQError):
    """A demonstration file or directory that cannot be used; the message names the file."""


class CheckpointError(VisualIQError):
    """A checkpoint file that is missing, corrupt, not visual-iq's, or made for other settings."""


class ConfigError(VisualIQError):
    """A training setting out of its valid range; the message names the setting and its value."""


class RunError(VisualIQError):
    """A training run's directory that cannot be read back (no event files, no evaluation yet)."""


class TrainingDiverged(VisualIQError):
    """The loss became NaN or infinite."""
