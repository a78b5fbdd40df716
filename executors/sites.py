"""Site files → validated models → a fresh Parsl `Config` (DESIGN.md §5).

    site = load_site("local")                  # a bundled name, or a path to a .toml file
    require_submittable(site)                  # before anything that submits: no placeholders
    config = parsl_config(site, run_dir)       # a new Config (and executor) on every call
    config = in_allocation_config(site, run_dir)  # the driver inside a Slurm/PBS job (issue 8)

Loading and validating never contact a scheduler or the network; Parsl (and, for the
`globus_compute` kind, the Globus Compute SDK) is only touched when a Config is built.
"""

from __future__ import annotations

import difflib
import os
import shlex
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from executors.site_models import (
    BatchSite,
    GlobusComputeSite,
    LocalSite,
    PbsSite,
    Site,
    SlurmSite,
    validate_site,
)
from rasterize_core.errors import ConfigError

__all__ = [
    "Site",
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


# --- loading -------------------------------------------------------------------------------------


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
    rows = []
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


def _resolve(name_or_path: str) -> Path:
    looks_like_path = (
        name_or_path.endswith(".toml") or "/" in name_or_path or os.sep in name_or_path
    )
    if looks_like_path:
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


# --- Parsl configs ------------------------------------------------------------------------------


def worker_init(site: Site) -> str:
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
) -> Any:
    """A new `parsl.config.Config` for this site (a fresh executor and provider every call).

    Slurm/PBS: pilot jobs from the driver's machine (SlurmProvider + SrunLauncher,
    PBSProProvider + MpiExecLauncher). Placeholders are not checked here (a dry run may render
    them): call `require_submittable` before running, except for `globus_compute`, whose
    executor needs a real endpoint id and is checked here.
    """
    if isinstance(site, LocalSite):
        executor = _htex(site, _local_provider(site), max_workers=_local_workers(site))
    elif isinstance(site, SlurmSite):
        executor = _htex(site, _slurm_provider(site), max_workers=_batch_workers(site))
    elif isinstance(site, PbsSite):
        executor = _htex(site, _pbs_provider(site), max_workers=_batch_workers(site))
    elif isinstance(site, GlobusComputeSite):
        require_submittable(site)
        executors = [_globus_executor(site)]
        return _config(executors, run_dir, retries, retry_handler, "none", 1.0, 0.0)
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
    from parsl.launchers import MpiExecLauncher, SrunLauncher
    from parsl.providers import LocalProvider

    if not isinstance(site, BatchSite):
        raise ConfigError(
            site.source,
            [f"kind: a {site.kind!r} site cannot run inside a batch job (use a slurm or pbs site)"],
        )
    if isinstance(site, SlurmSite):
        launcher = SrunLauncher(overrides=site.launcher_overrides)
    else:
        launcher = MpiExecLauncher(
            bind_cmd=site.mpiexec_bind_cmd, overrides=site.launcher_overrides
        )
    nodes = nodes or allocation_nodes() or site.nodes_per_block
    provider = LocalProvider(
        nodes_per_block=nodes,
        launcher=launcher,
        init_blocks=1,
        min_blocks=1,
        max_blocks=1,
        worker_init=worker_init(site),
        cmd_timeout=site.cmd_timeout,
    )
    executor = _htex(site, provider, max_workers=_batch_workers(site))
    return _config([executor], run_dir, retries, retry_handler, "simple", site.strategy_period, 0.0)


def allocation_nodes() -> int | None:
    """The node count of the batch job this process runs in, or None outside a job."""
    for var in ("SLURM_JOB_NUM_NODES", "SLURM_NNODES"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    nodefile = os.environ.get("PBS_NODEFILE")
    if nodefile and Path(nodefile).is_file():
        hosts = {line.strip() for line in Path(nodefile).read_text().splitlines() if line.strip()}
        return len(hosts) or None
    return None


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


def _htex(site, provider, max_workers):
    from parsl.executors import HighThroughputExecutor

    return HighThroughputExecutor(
        label=f"htex_{site.kind}",
        provider=provider,
        # The interchange runs beside the driver: start it with this Python, not from PATH
        # (a venv's bin/ is often not on the driver's PATH).
        interchange_launch_cmd=[
            sys.executable,
            "-m",
            "parsl.executors.high_throughput.interchange",
        ],
        address=_address(site.address),
        cores_per_worker=site.cores_per_worker,
        mem_per_worker=site.mem_per_worker,
        max_workers_per_node=max_workers,
        encrypted=site.encrypted,
    )


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


def _local_workers(site: LocalSite) -> int:
    return (os.cpu_count() or 1) if site.workers == "auto" else site.workers


def _batch_workers(site: BatchSite) -> int | None:
    return None if site.workers_per_node == "auto" else site.workers_per_node


def _local_provider(site: LocalSite):
    from parsl.providers import LocalProvider

    return LocalProvider(init_blocks=1, min_blocks=0, max_blocks=1, worker_init=worker_init(site))


def _slurm_provider(site: SlurmSite):
    from parsl.launchers import SrunLauncher
    from parsl.providers import SlurmProvider

    return SlurmProvider(
        partition=site.partition,
        account=site.account,
        qos=site.qos,
        constraint=site.constraint,
        nodes_per_block=site.nodes_per_block,
        cores_per_node=site.cores_per_node,
        mem_per_node=site.mem_per_node,
        init_blocks=site.init_blocks,
        min_blocks=site.min_blocks,
        max_blocks=site.max_blocks,
        parallelism=site.parallelism,
        walltime=site.walltime,
        scheduler_options=site.scheduler_options,
        worker_init=worker_init(site),
        exclusive=site.exclusive,
        cmd_timeout=site.cmd_timeout,
        launcher=SrunLauncher(overrides=site.launcher_overrides),
    )


def _pbs_provider(site: PbsSite):
    from parsl.launchers import MpiExecLauncher
    from parsl.providers import PBSProProvider

    return PBSProProvider(
        account=site.account,
        queue=site.queue,
        scheduler_options=site.scheduler_options,
        select_options=site.select_options,
        worker_init=worker_init(site),
        nodes_per_block=site.nodes_per_block,
        cpus_per_node=site.cpus_per_node,
        init_blocks=site.init_blocks,
        min_blocks=site.min_blocks,
        max_blocks=site.max_blocks,
        parallelism=site.parallelism,
        walltime=site.walltime,
        cmd_timeout=site.cmd_timeout,
        launcher=MpiExecLauncher(bind_cmd=site.mpiexec_bind_cmd, overrides=site.launcher_overrides),
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
    from executors.globus import require_login

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
