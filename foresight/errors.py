"""Errors that reach the user as one clear line.

Every error a user can cause (bad input file, unknown config key, foreign checkpoint, ...)
is raised as a :class:`ForesightError`; the CLI prints its message alone and exits non-zero.
"""


class ForesightError(Exception):
    """Base class: the message is the whole, one-line explanation, including what to do."""


class ConfigError(ForesightError):
    """A config file or value is invalid (unknown key, wrong type, missing file)."""


class DataError(ForesightError):
    """A dataset file is missing, corrupt, or not a foresight dataset."""


class CheckpointError(ForesightError):
    """A checkpoint is missing, corrupt, or belongs to another model."""


class RenderError(ForesightError):
    """Headless OpenGL rendering is unavailable."""
