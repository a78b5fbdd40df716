"""Imported by a local worker pool's fork server (`executors.warm_pool`), once per pool:
every library a worker's tasks use is loaded and the compiled kernels are warm before the
workers are forked from it, so that each starts ready for its first tile."""

from rasterflow.workflow import tasks
from rasterflow.workflow.worker_start import pyogrio_without_geopandas, warm_worker

pyogrio_without_geopandas()  # the fork server is no Parsl worker yet: say so here
for module in tasks.LAZY_MODULES:
    module.load()
warm_worker()
