"""The user-error types, defined at the bottom of the import graph (benchmarks/errors.py) so that
benchmarks/ and models/ raise them without importing the harness; re-exported here under the
names the rest of the harness uses. `except harness.errors.ConfigError` catches the same class."""

from __future__ import annotations

from benchmarks.errors import ConfigError, DataError, UserError

__all__ = ["ConfigError", "DataError", "UserError"]
