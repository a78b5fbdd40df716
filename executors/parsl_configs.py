"""Site models → a fresh Parsl `Config` (DESIGN.md §5).

    config = parsl_config(site, run_dir)          # a new Config (and executor) on every call
    config = in_allocation_config(site, run_dir)  # the driver inside a Slurm/PBS job (issue 8)

Parsl (and, for the `globus_compute` kind, the Globus Compute SDK) is only imported when a
Config is built.
"""

from __future__ import annotations

import logging
import os
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rasterflow.executors import parsl_lean, warm_pool
from rasterflow.executors.scheduler import allocation_nodes
from rasterflow.executors.site_models import (
    BatchSite,
    GlobusComputeSite,
    HtexSite,
    LocalSite,
    Site,
    SlurmSite,
    ThreadsSite,
)
from rasterflow.executors.sites import require_submittable
from rasterflow.rasterize_core.errors import ConfigError

log = logging.getLogger(__name__)

__all__ = [
    "in_allocation_config",
    "parsl_config",
    "worker_init",
]


def worker_init(site: HtexSite) -> str:
    """The shell lines run before each worker pool: the site's own lines, then PATH.

    The PATH line comes last so that a `module load python` in the site's lines cannot hide
    the environment rasterflow runs from (`prepend_path = ""` turns it off).
    """
    lines = []
    if site.worker_init.strip():
        lines.append(site.worker_init.strip())
    prepend = str(Path(sys.executable).parent) if site.prepend_path == "auto" else site.prepend_path
    if prepend:
        lines.append(f"export PATH={shlex.quote(prepend)}:$PATH")
    return "\n".join(lines)


def parsl_config(
    site: Site,
    run_dir: str | os.PathLike[str],
    retries: int = 2,
    retry_handler: Callable | None = None,
    warm_server: warm_pool.WarmServer | None = None,
) -> Any:
    """A new `parsl.config.Config` for this site (a fresh executor and provider every call).

    Local: with a `warm_server`, the pool's workers are forked from a server that imported
    its modules (`executors.warm_pool`): that server itself, started now, when the site
    has no worker_init lines of its own (the workers must start as those lines leave a
    shell), else one the pool starts. Without one, Parsl's own pool.

    Slurm/PBS: pilot jobs from the driver's machine (SlurmProvider + SrunLauncher,
    PBSProProvider + MpiExecLauncher). Placeholders are not checked here (a dry run may render
    them): call `require_submittable` before running, except for `globus_compute`, whose
    executor needs a real endpoint id and is checked here.
    """
    if isinstance(site, LocalSite):
        launch_cmd = _warm_pool_command(site, warm_server)  # first: the server starts now
        executor = _htex(site, _local_provider(site), max_workers=_local_workers(site),
                         launch_cmd=launch_cmd)  # fmt: skip
    elif isinstance(site, BatchSite):
        executor = _htex(site, _pilot_provider(site), max_workers=_batch_workers(site))
    elif isinstance(site, GlobusComputeSite):
        require_submittable(site)
        executors = [_globus_executor(site)]
        return _config(executors, run_dir, retries, retry_handler, "none", 1.0, 0.0)
    elif isinstance(site, ThreadsSite):
        return _config([_threads(site)], run_dir, retries, retry_handler, "none", 1.0, 0.0)
    else:  # pragma: no cover - the models are a closed set
        raise TypeError(f"not a site model: {site!r}")
    return _config(
        [executor],
        run_dir,
        retries,
        retry_handler,
        site.strategy,
        site.strategy_period,
        site.max_idletime,
    )


def in_allocation_config(
    site: Site,
    run_dir: str | os.PathLike[str],
    retries: int = 2,
    retry_handler: Callable | None = None,
    nodes: int | None = None,
) -> Any:
    """A new Config for a driver running inside one Slurm/PBS job (issue 8).

    HighThroughputExecutor + LocalProvider, one worker pool per node of the job, started with
    srun (Slurm) or mpiexec (PBS). `nodes` defaults to the job's node count
    (`SLURM_JOB_NUM_NODES`, the distinct hosts of `PBS_NODEFILE`), else `nodes_per_block`.
    """
    from parsl.providers import LocalProvider

    if not isinstance(site, BatchSite):
        raise ConfigError(
            site.source,
            [f"kind: a {site.kind!r} site cannot run inside a batch job (use a slurm or pbs site)"],
        )
    nodes = nodes or allocation_nodes() or site.nodes_per_block
    provider = LocalProvider(
        nodes_per_block=nodes,
        launcher=_launcher(site),
        init_blocks=1,
        min_blocks=1,
        max_blocks=1,
        worker_init=worker_init(site),
        cmd_timeout=site.cmd_timeout,
    )
    executor = _htex(site, provider, max_workers=_batch_workers(site))
    return _config([executor], run_dir, retries, retry_handler, "simple", site.strategy_period, 0.0)


def _config(executors, run_dir, retries, retry_handler, strategy, period, max_idletime):
    from parsl.config import Config
    from parsl.dataflow.memoization import BasicMemoizer

    return Config(
        executors=executors,
        run_dir=str(run_dir),
        retries=retries,
        retry_handler=retry_handler,
        # rasterflow resumes from its own event log: no Parsl app cache or checkpoints.
        memoizer=BasicMemoizer(memoize=False),
        strategy=strategy,
        strategy_period=period,
        max_idletime=max_idletime,
        usage_tracking=0,
        initialize_logging=True,
    )


def _htex(site, provider, max_workers, launch_cmd: str | None = None):
    from parsl.executors import HighThroughputExecutor

    return HighThroughputExecutor(
        label=f"htex_{site.kind}",
        provider=provider,
        launch_cmd=launch_cmd,
        # The interchange runs beside the driver: start it with this Python, not from PATH
        # (a venv's bin/ is often not on the driver's PATH), without the Globus Compute SDK.
        interchange_launch_cmd=[sys.executable, "-c", parsl_lean.INTERCHANGE],
        address=_address(site.address),
        cores_per_worker=site.cores_per_worker,
        mem_per_worker=site.mem_per_worker,
        max_workers_per_node=max_workers,
        encrypted=site.encrypted,
        # A killed worker is noticed at the pool's next heartbeat: on one machine, every 5 s
        # is cheap; on a cluster, Parsl's 30 s spares the interchange.
        heartbeat_period=5 if site.kind == "local" else 30,
        # How long the driver's result thread and the interchange wait for a message before
        # looking around; a message still wakes them at once. Parsl's 10 ms costs the driver
        # ~0.5 % of a core while it waits, for the whole run.
        poll_period=100,
    )


def _warm_pool_command(site: LocalSite, server: warm_pool.WarmServer | None) -> str | None:
    """The local pool's command: Parsl's, run by `warm_pool` with this Python."""
    if server is None:
        return None
    argument = None
    # With worker_init lines, the workers must start from the shell they leave.
    if warm_pool.DRIVER_SERVER_WORKS and not site.worker_init.strip():
        try:
            argument = server.start()
        except OSError as err:  # no socket here (TMPDIR too long, read-only): the pool's own
            log.warning("workers start from the pool's fork server: %s", err)
    from parsl.executors.high_throughput.executor import DEFAULT_LAUNCH_CMD

    return warm_pool.launch_command(sys.executable, server.preload, DEFAULT_LAUNCH_CMD, argument)


def _address(setting: str) -> str | None:
    from parsl.addresses import address_by_hostname, address_by_route

    if setting == "auto":
        return None  # Parsl tries every address of this machine
    if setting == "loopback":
        return "127.0.0.1"
    if setting == "hostname":
        return address_by_hostname()
    if setting == "route":
        return address_by_route()
    return setting


def _threads(site: ThreadsSite):
    from parsl.executors import ThreadPoolExecutor

    count = (os.cpu_count() or 1) if site.max_threads == "auto" else site.max_threads
    return ThreadPoolExecutor(label="threads", max_threads=count)


def _local_workers(site: LocalSite) -> int:
    return (os.cpu_count() or 1) if site.workers == "auto" else site.workers


def _batch_workers(site: BatchSite) -> int | None:
    return None if site.workers_per_node == "auto" else site.workers_per_node


def _local_provider(site: LocalSite):
    from parsl.providers import LocalProvider

    # Every process of the pool imports Parsl: let it skip the Globus Compute SDK.
    lean = f"export PYTHONPATH={shlex.quote(str(parsl_lean.FOLDER))}${{PYTHONPATH:+:$PYTHONPATH}}"
    lines = "\n".join(line for line in (worker_init(site), lean) if line)
    return LocalProvider(init_blocks=1, min_blocks=0, max_blocks=1, worker_init=lines)


def _launcher(site: BatchSite):
    """What starts one worker pool on each node: srun (Slurm) or mpiexec (PBS)."""
    from parsl.launchers import MpiExecLauncher, SrunLauncher

    if isinstance(site, SlurmSite):
        return SrunLauncher(overrides=site.launcher_overrides)
    return MpiExecLauncher(bind_cmd=site.mpiexec_bind_cmd, overrides=site.launcher_overrides)


def _pilot_provider(site: BatchSite):
    """SlurmProvider or PBSProProvider: pilot jobs submitted from the driver's machine."""
    from parsl.providers import PBSProProvider, SlurmProvider

    blocks = {
        "account": site.account,
        "scheduler_options": site.scheduler_options,
        "worker_init": worker_init(site),
        "nodes_per_block": site.nodes_per_block,
        "init_blocks": site.init_blocks,
        "min_blocks": site.min_blocks,
        "max_blocks": site.max_blocks,
        "parallelism": site.parallelism,
        "walltime": site.walltime,
        "cmd_timeout": site.cmd_timeout,
        "launcher": _launcher(site),
    }
    if isinstance(site, SlurmSite):
        return SlurmProvider(
            partition=site.partition,
            qos=site.qos,
            constraint=site.constraint,
            cores_per_node=site.cores_per_node,
            mem_per_node=site.mem_per_node,
            exclusive=site.exclusive,
            **blocks,
        )
    return PBSProProvider(
        queue=site.queue,
        select_options=site.select_options,
        cpus_per_node=site.cpus_per_node,
        **blocks,
    )


def _globus_executor(site: GlobusComputeSite):
    """Parsl's GlobusComputeExecutor over a globus_compute_sdk.Executor (built only here)."""
    try:
        import globus_compute_sdk
        from parsl.executors import GlobusComputeExecutor
    except ImportError as exc:
        raise ConfigError(
            site.source,
            [
                f"kind: 'globus_compute' needs globus-compute-sdk ({exc}): "
                "pip install 'rasterflow[globus]'"
            ],
        ) from exc
    from rasterflow.executors.globus_login import require_login

    require_login()  # fail with the login hint now, never prompt later
    kwargs: dict[str, Any] = {"endpoint_id": site.endpoint_id}
    if site.user_endpoint_config is not None:
        kwargs["user_endpoint_config"] = dict(site.user_endpoint_config)
    if site.resource_specification is not None:
        kwargs["resource_specification"] = dict(site.resource_specification)
    if site.amqp_port is not None:
        kwargs["amqp_port"] = site.amqp_port
    return GlobusComputeExecutor(
        executor=globus_compute_sdk.Executor(**kwargs), label="globus_compute"
    )
