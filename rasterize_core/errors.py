"""Every error rasterflow raises on purpose: one base class, named subclasses.

Each class says what the command line does with it (`exit_code`: 1 the run started and
stopped or failed in part, 2 nothing ran) and whether a Parsl retry could help (`retryable`).
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel
from pydantic_core.core_schema import ErrorType

if TYPE_CHECKING:
    from pydantic import ValidationError

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

    @classmethod
    def from_validation(
        cls, source: str, err: ValidationError, model: type[BaseModel]
    ) -> ConfigError:
        """pydantic's errors for `model` as "key path: problem; did you mean `x`?" lines.

        Problems at one path share a line. An unknown key gets the closest known key of the
        model it sits in (its fields and the names in its `HINT_KEYS` class attribute, if
        any), else the list of its fields. A problem of the whole model (a cross-check) keeps
        its own words, which name the keys.
        """
        lines: dict[str, list[str]] = {}
        for error in err.errors():
            path, owner = key_path(error["loc"], model)
            problem = _problem(error, owner)
            if problem not in lines.setdefault(path, []):
                lines[path].append(problem)
        return cls(source, [f"{p}: {'; '.join(m)}" if p else "; ".join(m)
                            for p, m in lines.items()])  # fmt: skip


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


class ParameterError(RasterflowError):
    """A request or command argument that cannot be served (a bad palette, range, point or
    box): `rasterflow serve` answers 400 with the message, `rasterflow export` exits 2."""


# -- pydantic errors in the user's words -------------------------------------------------------

# pydantic's own error types (its type and format checks): their message does not show the
# value, so the line adds it. Validators' own messages (value_error, custom types) name it.
_PYDANTIC_TYPES = frozenset(typing.get_args(ErrorType)) - {"value_error", "assertion_error"}
_TYPE_TAGS = frozenset({"str", "int", "float", "bool", "none", "list", "tuple", "dict", "set",
                        "bytes", "decimal", "literal", "union", "[key]"})  # fmt: skip


def key_path(loc: tuple, model: type[BaseModel]) -> tuple[str, type[BaseModel] | None]:
    """`("statistics", 1, "z_config", "13", "val_range")` -> "statistics[1].z_config[13].
    val_range", and the model the last key belongs to. List indexes and numeric mapping keys
    go in brackets; pydantic's union and validator tags are dropped."""
    owner: type[BaseModel] | None = model
    current: type[BaseModel] | None = model
    text, in_mapping = "", False
    for item in loc:
        name = str(item)
        if isinstance(item, int):
            text += f"[{item}]"
        elif current is not None and name in current.model_fields:
            owner, text = current, text + ("." if text else "") + name
            current, in_mapping = _inside(current.model_fields[name].annotation)
        elif _is_tag(name):
            continue
        elif in_mapping:  # a key of a free-form table or of a mapping of models
            text += f"[{name}]" if name.lstrip("-").isdigit() else f".{name}"
            in_mapping = False
        else:  # an unknown key, reported by its owner
            owner = current or owner
            text += ("." if text else "") + name
    return text, owner


def _problem(error: Mapping[str, Any], owner: type[BaseModel] | None) -> str:
    kind, loc = error["type"], error["loc"]
    if kind == "extra_forbidden":
        return _unknown_key(str(loc[-1]), owner)
    if kind == "missing":
        return "item missing (too few items)" if loc and isinstance(loc[-1], int) else (
            "required key is missing")  # fmt: skip
    message = error["msg"].removeprefix("Value error, ")
    if kind in _PYDANTIC_TYPES and "input" in error:
        message += f" (got {error['input']!r})"
    return message


def _unknown_key(key: str, owner: type[BaseModel] | None) -> str:
    fields = sorted(owner.model_fields) if owner else []
    known = fields + sorted(getattr(owner, "HINT_KEYS", ()))
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if close:
        return f"unknown key; did you mean `{close[0]}`?"
    return f"unknown key (allowed: {', '.join(fields)})"


def _is_tag(name: str) -> bool:
    return name in _TYPE_TAGS or "[" in name or name.startswith(("function-", "lax-", "json-"))


def _inside(annotation: Any) -> tuple[type[BaseModel] | None, bool]:
    """The model an annotation holds (in a list, tuple, mapping or union), and whether it is
    a mapping (whose keys come next in an error's location)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    origin = typing.get_origin(annotation)
    mapping = origin is dict or (isinstance(origin, type) and issubclass(origin, dict))
    for arg in typing.get_args(annotation):
        inner, inner_mapping = _inside(arg)
        mapping = mapping or (inner_mapping and origin in (typing.Union, types.UnionType))
        if inner is not None:
            return inner, mapping
    return None, mapping
