"""Where a run executes: site files → validated models → Parsl configs; batch schedulers;
Globus Compute transport. Knows nothing of runs: the engine above calls it."""

from rasterflow.executors.parsl_configs import (
    in_allocation_config,
    parsl_config,
    worker_init,
)
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
