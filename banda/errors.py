"""User-facing errors.

Anything a user can cause (a bad file, a wrong config key, a missing corpus path) raises a
:class:`BandaError`. Entry points turn it into one line on stderr and exit code 2
(see :func:`banda.cli.run_main`); programming errors keep their traceback.
"""


class BandaError(Exception):
    """An error caused by input the user can fix; its message is one self-contained line."""


class AudioError(BandaError):
    """Unreadable, empty, non-finite or wrongly shaped audio."""


class ConfigError(BandaError):
    """Unknown or invalid configuration key or value."""


class DataError(BandaError):
    """A malformed data directory, manifest or dataset layout."""
