"""Imported by a local worker pool's fork server (`executors.warm_pool`), once per pool:
every library a worker's tasks use is loaded and the compiled kernels are warm before the
workers are forked from it, so that each starts ready for its first tile."""

from rasterflow.workflow.worker_start import load_worker_libraries

load_worker_libraries()
