"""Every error rasterflow raises on purpose: one base class, named subclasses."""


class RasterflowError(Exception):
    """Base of every error rasterflow raises on purpose."""


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
    """A staged tile cannot be used: deterministic, so never retried."""

    def __init__(self, path: str, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")

    def __reduce__(self):
        return (type(self), (self.path, self.reason))


class RunLockedError(RasterflowError):
    """Another live run holds the lock on this output."""


class RunAbortedError(RasterflowError):
    """The run stopped before its end (its executor died); what is done is kept."""


class SubmitError(RasterflowError):
    """A remote or batch submission could not be made."""
