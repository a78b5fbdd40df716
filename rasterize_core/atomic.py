"""Atomic file writes: write to a temporary name unique to the writer, in the same folder,
then `os.replace` it into place.

No reader ever sees a half-written file, and two writers of the same target (for instance a
worker orphaned by a killed driver and its replacement) never write into each other's
temporary file: the last rename wins with a complete file. On any error the temporary file
is removed and the target is left as it was.

Temporary names are `{name}.{pid}.{8 hex}.tmp`; `is_temp_file` recognises them, so a resume
can sweep the ones a killed writer left behind.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from uuid import uuid4

_TEMP_RE = re.compile(r"^.+\.\d+\.[0-9a-f]{8}\.tmp$")


def temp_path_for(path: str | os.PathLike[str]) -> Path:
    """A fresh temporary name for `path`, in the same folder, unique to this writer."""
    path = Path(path)
    return path.with_name(f"{path.name}.{os.getpid()}.{uuid4().hex[:8]}.tmp")


def is_temp_file(path: str | os.PathLike[str]) -> bool:
    """True if `path` is named like a temporary file of `temp_path_for`."""
    return bool(_TEMP_RE.match(Path(path).name))


@contextmanager
def atomic_path(path: str | os.PathLike[str], *, mkdir: bool = True) -> Iterator[Path]:
    """Yield a temporary path to write the whole file to; on leaving the block without an
    error, rename it onto `path`. On an error (in the block or in the rename) remove the
    temporary file, leave `path` untouched and re-raise.

    The block must create the file at the yielded path (a writer that takes a file name,
    such as rasterio or Pillow, can write to it directly). Parent folders are created
    unless `mkdir` is False.
    """
    path = Path(path)
    if mkdir:
        path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with suppress(OSError):
            tmp.unlink()
        raise


def atomic_write_bytes(
    path: str | os.PathLike[str], data: bytes, *, fsync: bool = False, mkdir: bool = True
) -> Path:
    """Write `data` to `path` atomically; return `path` as a Path.

    `fsync=True` also flushes the data to disk before the rename (survives a power loss,
    costs milliseconds per file); without it the file survives a killed process, which is
    what resumable runs need.
    """
    path = Path(path)
    with atomic_path(path, mkdir=mkdir) as tmp, open(tmp, "xb") as fh:
        fh.write(data)
        if fsync:
            fh.flush()
            os.fsync(fh.fileno())
    return path
