"""Errors that reach the user.

Every problem the user can fix (bad input, missing data, a corrupt file, a diverged run) raises a
subclass of :class:`UnsupError` whose message says what was expected and how to fix it. The CLI
prints such errors as one line and exits with status 2; anything else is a bug and keeps its
traceback.
"""


class UnsupError(Exception):
    """A problem the user can fix; the message says how."""


class DataError(UnsupError):
    """Missing, corrupt or malformed data."""


class ConfigError(UnsupError):
    """An unknown name or an invalid option value."""


class CheckpointError(UnsupError):
    """A run directory or checkpoint that cannot be read."""


class TrainingDiverged(UnsupError):
    """The loss became NaN or infinite."""


class Interrupted(UnsupError):
    """Training stopped by SIGINT (Ctrl-C) or SIGTERM after writing a resumable checkpoint.

    Attributes:
        exit_code: the shell's code for death by that signal, 128 + its number (130, 143).
    """

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class SamplingError(UnsupError):
    """A model drew samples that are not data (non-finite values or values outside its levels)."""
