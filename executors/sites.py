"""Site files: find, read and validate them (DESIGN.md §5).

    site = load_site("local")                  # a bundled name, or a path to a .toml file
    require_submittable(site)                  # before anything that submits: no placeholders

Loading and validating never contact a scheduler or the network; `parsl_configs`
turns a site into a Parsl `Config`.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from pathlib import Path

from rasterflow.executors.site_models import Site, validate_site
from rasterflow.rasterize_core.errors import ConfigError

__all__ = [
    "bundled_sites_dir",
    "is_site_path",
    "list_sites",
    "load_site",
    "require_submittable",
]


def bundled_sites_dir() -> Path:
    """The folder of the bundled site files (installed package, or the source checkout)."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "site_configs", here.parent / "site_configs"):
        if candidate.is_dir() and any(candidate.glob("*.toml")):
            return candidate
    raise FileNotFoundError(f"no bundled site_configs/ folder next to {here}")


def load_site(name_or_path: str | os.PathLike[str]) -> Site:
    """Read and validate one site: a bundled name (`local`, `slurm-example`) or a file path."""
    path = _resolve(str(name_or_path))
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(str(path), [f"cannot read the site file: {exc.strerror or exc}"]) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), [f"not valid TOML: {exc}"]) from exc
    return validate_site(data, source=str(path), name=path.stem)


def list_sites() -> list[tuple[str, str, str]]:
    """(name, kind, description) of every bundled site, sorted by name: `rasterflow sites`."""
    rows: list[tuple[str, str, str]] = []
    for path in sorted(bundled_sites_dir().glob("*.toml")):
        site = load_site(path)
        rows.append((site.name, site.kind, site.description))
    return rows


def require_submittable(site: Site) -> None:
    """Raise ConfigError naming every placeholder left in the site (anything that submits)."""
    found = site.placeholders()
    if found:
        raise ConfigError(
            site.source,
            [
                f"{key}: replace the placeholder {value!r} with your site's value"
                for key, value in found.items()
            ],
        )


def is_site_path(name_or_path: str) -> bool:
    """True for a site file's path, False for the name of a bundled site."""
    return name_or_path.endswith(".toml") or "/" in name_or_path or os.sep in name_or_path


def _resolve(name_or_path: str) -> Path:
    if is_site_path(name_or_path):
        path = Path(name_or_path).expanduser()
        if not path.is_file():
            raise ConfigError(str(path), ["site file not found"])
        return path
    bundled = bundled_sites_dir()
    path = bundled / f"{name_or_path}.toml"
    if path.is_file():
        return path
    names = sorted(p.stem for p in bundled.glob("*.toml"))
    close = difflib.get_close_matches(name_or_path, names, n=1)
    hint = f"; did you mean `{close[0]}`?" if close else ""
    raise ConfigError(
        name_or_path,
        [
            f"no bundled site named {name_or_path!r}{hint} (bundled: {', '.join(names)}; "
            "or give the path to a .toml file)"
        ],
    )
