"""Every error rasterflow raises on purpose: one base class, named subclasses.

Each class says what the command line does with it (`exit_code`: 1 the run started and
stopped or failed in part, 2 nothing ran) and whether a Parsl retry could help (`retryable`).
"""

from __future__ import annotations

EXIT_FAILED_TILES = 1
EXIT_USAGE = 2


class RasterflowError(Exception):
    """Base of every error rasterflow raises on purpose."""

    exit_code: int = EXIT_USAGE
    retryable: bool = False


class ConfigError(RasterflowError):
    """A config (run JSON or site TOML) is invalid; nothing has run.

    `problems` holds one line per problem, each naming the key path.
    """

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = list(problems)
        listing = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"invalid config {source}:\n{listing}")

    def __reduce__(self):  # errors cross process boundaries (Parsl workers): keep both fields
        return (type(self), (self.source, self.problems))


class TileInputError(RasterflowError):
    """A staged tile cannot be used: deterministic, so never retried.

    `detail` keeps the library's own words (for the event row), `reason` is the user's.
    """

    exit_code = EXIT_FAILED_TILES

    def __init__(self, path: str, reason: str, detail: str | None = None):
        self.path = str(path)
        self.reason = reason
        self.detail = detail
        super().__init__(f"{path}: {reason}")

    def __reduce__(self):
        return (type(self), (self.path, self.reason, self.detail))


class RunLockedError(RasterflowError):
    """Another live run holds the lock on this output."""


class RunAbortedError(RasterflowError):
    """The run stopped before its end (its executor died); what is done is kept."""

    exit_code = EXIT_FAILED_TILES
    retryable = True


class SubmitError(RasterflowError):
    """A remote or batch submission could not be made."""


class OptionalDependencyMissing(SubmitError):
    """A feature needs an optional extra that is not installed."""

    def __init__(self, extra: str, feature: str, cause: BaseException | None = None):
        self.extra, self.feature = extra, feature
        hint = f"pip install 'rasterflow[{extra}]'"
        why = f" ({cause})" if cause else ""
        super().__init__(f"{feature} needs the '{extra}' extra: {hint}{why}")

    def __reduce__(self):
        return (type(self), (self.extra, self.feature))
