"""The errors sensekit raises. Each message is one line that names the problem and the fix.

The CLI turns `SensekitError` into a one-line message and `exit_code`; anything else is a bug.
"""


class SensekitError(Exception):
    """Base class. `exit_code` is what the CLI exits with."""

    exit_code = 1


class NotFound(SensekitError, LookupError):
    """A word, token or sense that the store does not hold."""


class InputError(SensekitError, ValueError):
    """Bad user input: a malformed file, an empty corpus, an invalid flag value."""


class StoreError(SensekitError):
    """A missing, corrupt or incomplete store bundle."""

    exit_code = 2


class SchemaMismatch(StoreError):
    """The store was written with another schema version."""


class IndexMismatch(StoreError):
    """The HNSW index does not match what DuckDB recorded about it."""


class TeacherMismatch(SensekitError):
    """A store built with another teacher, tokenizer or hidden size than the run's."""


class MissingDependency(SensekitError):
    """An optional package a command needs is not installed."""
