"""One error type for user mistakes, at the bottom of the import graph.

`benchmarks/` and `models/` raise these, and so does `harness/` (which re-exports them as
`harness.errors`), so no import runs from the data or model layers up into the harness.
Anything the user can fix (a config key, a file, a CLI argument) raises `UserError` or a subclass;
the CLI prints it as one line and exits with code 2. Everything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """A mistake the user can fix. `str(err)` is the one-line message shown to them."""

    exit_code = 2


class ConfigError(UserError):
    """A bad configuration value: names the file, the dotted key and what was expected.

    `source` is the file (or "command line") the value came from; code that validates a section
    without knowing its file leaves it None and the loader fills it in with `with_source`.
    """

    def __init__(self, key: str | None, expected: str, source: str | None = None):
        self.key = key
        self.expected = expected
        self.source = source
        super().__init__(str(self))

    def with_source(self, source: str) -> ConfigError:
        return ConfigError(self.key, self.expected, self.source or source)

    def __str__(self) -> str:
        where = ": ".join(p for p in (self.source, self.key) if p)
        return f"{where}: {self.expected}" if where else self.expected


class DataError(UserError):
    """A malformed input data file: names the file, the line (or record) and the reason."""

    def __init__(self, path: str, line: int | str | None, reason: str):
        self.path, self.line, self.reason = str(path), line, reason
        loc = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{loc}: {reason}")
