"""rasterflow's execution sites: site files → validated models → Parsl configs (DESIGN.md §5)."""

from executors.site_models import (
    GlobusComputeSite,
    LocalSite,
    PbsSite,
    Site,
    SlurmSite,
)
from executors.sites import (
    allocation_nodes,
    bundled_sites_dir,
    in_allocation_config,
    list_sites,
    load_site,
    parsl_config,
    require_submittable,
    validate_site,
    worker_init,
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
