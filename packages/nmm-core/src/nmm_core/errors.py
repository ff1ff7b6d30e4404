"""User-facing errors: each is shown as one clear line and a non-zero exit code."""

from __future__ import annotations


class NmmError(Exception):
    """An error the user can act on; the CLI prints its message without a traceback."""

    exit_code = 2


class ConfigError(NmmError):
    """A setting is missing, unknown or out of range (the message names the field)."""


class DataError(NmmError):
    """A data source or record cannot be used (the message names the record and field)."""


class PresetError(NmmError):
    """An unknown preset name, a duplicate registration, or a model that cannot be loaded."""


class DeviceError(NmmError):
    """A feature needs hardware or a library this machine lacks (the message says what to do)."""


class Interrupted(NmmError):
    """Ctrl-C in a command that keeps nothing to resume from (the message says what is left)."""

    exit_code = 130
