"""Where a run executes: site files → validated models → Parsl configs; batch schedulers;
Globus Compute transport. Knows nothing of runs: the engine above calls it.

The names below are imported at first use: a worker pool started as
`python -m rasterflow.executors.warm_pool` imports this package first, and should not pay
for pydantic's site models before its fork server starts.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rasterflow.executors.parsl_configs import in_allocation_config, parsl_config, worker_init
    from rasterflow.executors.scheduler import allocation_nodes
    from rasterflow.executors.site_models import (
        GlobusComputeSite,
        LocalSite,
        PbsSite,
        Site,
        SlurmSite,
        validate_site,
    )
    from rasterflow.executors.sites import (
        bundled_sites_dir,
        list_sites,
        load_site,
        require_submittable,
    )

_HOMES = {
    "parsl_configs": ("in_allocation_config", "parsl_config", "worker_init"),
    "scheduler": ("allocation_nodes",),
    "site_models": (
        "GlobusComputeSite",
        "LocalSite",
        "PbsSite",
        "Site",
        "SlurmSite",
        "validate_site",
    ),
    "sites": ("bundled_sites_dir", "list_sites", "load_site", "require_submittable"),
}
_HOME_OF = {name: module for module, names in _HOMES.items() for name in names}
__all__ = [
    "GlobusComputeSite",
    "LocalSite",
    "PbsSite",
    "Site",
    "SlurmSite",
    "allocation_nodes",
    "bundled_sites_dir",
    "in_allocation_config",
    "list_sites",
    "load_site",
    "parsl_config",
    "require_submittable",
    "validate_site",
    "worker_init",
]


def __getattr__(name: str) -> Any:
    if name not in _HOME_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOME_OF[name]}"), name)
