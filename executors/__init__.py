"""rasterflow's execution sites: site files → validated models → Parsl configs (DESIGN.md §5)."""

from executors.parsl_configs import (
    allocation_nodes,
    in_allocation_config,
    parsl_config,
    worker_init,
)
from executors.site_models import (
    GlobusComputeSite,
    LocalSite,
    PbsSite,
    Site,
    SlurmSite,
    validate_site,
)
from executors.sites import (
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
