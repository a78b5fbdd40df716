"""Site files as typed data: one frozen pydantic model per site kind (DESIGN.md §5).

A site file is a TOML table with a `kind` field (`local`, `slurm`, `pbs`, `globus_compute`,
`threads`)
that picks the model. The models only hold and check values: nothing here imports Parsl or
contacts a scheduler or the network. `validate_site` turns a parsed table into a model, or
into a ConfigError with one line per problem, each naming its key path. `rasterflow.executors.sites`
turns a model into a Parsl `Config`.
"""

from __future__ import annotations

import datetime
import difflib
import re
import uuid
from typing import Annotated, Any, Literal, cast

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
)
from pydantic_core import PydanticCustomError

from rasterflow.rasterize_core.errors import ConfigError

KINDS = ("local", "slurm", "pbs", "globus_compute", "threads")

# `YOUR_ACCOUNT`, `YOUR_PARTITION`, `YOUR-ENDPOINT-UUID`, ...: loadable, never submittable.
PLACEHOLDER_RE = re.compile(r"\bYOUR[_-][A-Z0-9_-]*[A-Z0-9]")

WALLTIME_RE = re.compile(r"^\d+:[0-5]\d:[0-5]\d$")


def _auto_or_positive_int(value: Any) -> Any:
    if value == "auto":
        return value
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise PydanticCustomError(
            "auto_or_positive_int",
            'expected a positive integer or "auto", got {got}',
            {"got": repr(value)},
        )
    return value


def _walltime(value: Any) -> Any:
    if isinstance(value, datetime.time):  # TOML reads an unquoted 01:30:00 as a time
        return value.strftime("%H:%M:%S")
    if not isinstance(value, str) or not WALLTIME_RE.match(value):
        raise PydanticCustomError(
            "walltime", 'expected a walltime "HH:MM:SS" (a string), got {got}', {"got": repr(value)}
        )
    return value


AutoInt = Annotated[int | Literal["auto"], BeforeValidator(_auto_or_positive_int)]
Walltime = Annotated[str, BeforeValidator(_walltime)]
PositiveInt = Annotated[int, Field(ge=1)]
NonNegativeInt = Annotated[int, Field(ge=0)]


class _SiteModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    description: str
    _name: str = PrivateAttr(default="")
    _source: str = PrivateAttr(default="<memory>")

    @property
    def name(self) -> str:
        """The site's name: the file's stem (`slurm-example`)."""
        return self._name

    @property
    def source(self) -> str:
        """Where the site was read from (a file path), for error messages."""
        return self._source

    def placeholders(self) -> dict[str, str]:
        """Every value still holding a placeholder, as {key path: placeholder}."""
        found: dict[str, str] = {}
        _scan(self.model_dump(), "", found)
        return found


def _scan(value: Any, path: str, found: dict[str, str]) -> None:
    if isinstance(value, str):
        match = PLACEHOLDER_RE.search(value)
        if match:
            found[path] = match.group(0)
    elif isinstance(value, dict):
        for key, item in value.items():
            _scan(item, f"{path}.{key}" if path else str(key), found)
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _scan(item, f"{path}[{i}]", found)


class _HtexSite(_SiteModel):
    """Fields shared by every site that runs Parsl's HighThroughputExecutor."""

    worker_init: str = ""
    # Directory put first on the workers' PATH (Parsl starts `process_worker_pool.py` from
    # PATH): "auto" = the bin/ of the Python running rasterflow, "" = leave PATH alone.
    prepend_path: str = "auto"
    cores_per_worker: float = Field(default=1.0, gt=0)
    mem_per_worker: float | None = Field(default=None, gt=0)
    # Where workers reach the driver: "auto" (Parsl probes every address), "loopback",
    # "hostname" (address_by_hostname), "route" (address_by_route), or a literal IP.
    address: str = "auto"
    encrypted: bool = True
    strategy: Literal["simple", "htex_auto_scale", "none"] = "simple"
    # Seconds between scaling decisions; the first blocks start at the first one.
    strategy_period: float = Field(default=1.0, gt=0)
    max_idletime: float = Field(default=120.0, ge=0)


class _BatchSite(_HtexSite):
    """Fields shared by the Slurm and PBS kinds (pilot jobs, or the driver inside a job)."""

    account: str | None = None
    walltime: Walltime = "01:00:00"
    nodes_per_block: PositiveInt = 1
    init_blocks: NonNegativeInt = 1
    min_blocks: NonNegativeInt = 0
    max_blocks: PositiveInt = 1
    parallelism: float = Field(default=1.0, ge=0, le=1)
    workers_per_node: AutoInt = "auto"
    scheduler_options: str = ""
    # Extra arguments to the launcher (srun / mpiexec), e.g. "--cpus-per-task=32".
    launcher_overrides: str = ""
    cmd_timeout: PositiveInt = 30

    @field_validator("max_blocks")
    @classmethod
    def _blocks_ordered(cls, value: int, info: Any) -> int:
        low = max(info.data.get("init_blocks", 0), info.data.get("min_blocks", 0))
        if value < low:
            raise PydanticCustomError(
                "blocks_order",
                "max_blocks ({max}) is below init_blocks/min_blocks ({low})",
                {"max": value, "low": low},
            )
        return value


class LocalSite(_HtexSite):
    """This machine: HighThroughputExecutor + LocalProvider."""

    kind: Literal["local"]
    workers: AutoInt = "auto"  # "auto" = os.cpu_count()
    address: str = "loopback"


class SlurmSite(_BatchSite):
    """A Slurm cluster: SlurmProvider + SrunLauncher."""

    kind: Literal["slurm"]
    partition: str | None = None
    qos: str | None = None
    constraint: str | None = None
    cores_per_node: PositiveInt | None = None
    mem_per_node: PositiveInt | None = None  # GB
    exclusive: bool = True
    # srun gives a job step one CPU per task unless told otherwise: give each node's worker
    # pool every CPU the job holds there.
    launcher_overrides: str = "--cpus-per-task=$SLURM_CPUS_ON_NODE"


class PbsSite(_BatchSite):
    """A PBS Pro machine: PBSProProvider + MpiExecLauncher."""

    kind: Literal["pbs"]
    queue: str | None = None
    cpus_per_node: PositiveInt = 1
    select_options: str = ""  # appended to `#PBS -l select=N:ncpus=C`, e.g. "ngpus=4"
    mpiexec_bind_cmd: str = "--bind-to"  # "--cpu-bind" for Cray PALS (Polaris)
    launcher_overrides: str = ""


class GlobusComputeSite(_SiteModel):
    """Each app runs through a Globus Compute endpoint: Parsl's GlobusComputeExecutor."""

    kind: Literal["globus_compute"]
    endpoint_id: str
    user_endpoint_config: dict[str, Any] | None = None
    resource_specification: dict[str, Any] | None = None
    amqp_port: PositiveInt | None = None

    @field_validator("endpoint_id")
    @classmethod
    def _uuid_or_placeholder(cls, value: str) -> str:
        if PLACEHOLDER_RE.search(value):
            return value
        try:
            uuid.UUID(value)
        except ValueError:
            raise PydanticCustomError(
                "endpoint_uuid", "expected an endpoint UUID, got {got}", {"got": repr(value)}
            ) from None
        return value


class ThreadsSite(_SiteModel):
    """Threads of the driver's own process: Parsl's ThreadPoolExecutor. No worker processes
    start (a run is ready at once), but a tile that crashes or exhausts memory takes the
    driver down with it: for tests that check outputs, not for production runs."""

    kind: Literal["threads"]
    max_threads: AutoInt = "auto"  # "auto" = os.cpu_count()


Site = Annotated[
    LocalSite | SlurmSite | PbsSite | GlobusComputeSite | ThreadsSite, Field(discriminator="kind")
]
BatchSite = SlurmSite | PbsSite
HtexSite = LocalSite | SlurmSite | PbsSite  # every kind whose workers Parsl's HTEX starts

MODELS: dict[str, type[_SiteModel]] = {
    "local": LocalSite,
    "slurm": SlurmSite,
    "pbs": PbsSite,
    "globus_compute": GlobusComputeSite,
    "threads": ThreadsSite,
}


# --- validation: a parsed TOML table → a model, or one ConfigError line per problem ---------


def validate_site(data: dict[str, Any], source: str = "<memory>", name: str = "") -> Site:
    """Validate a parsed site table; every problem becomes one line of a ConfigError."""
    kind = data.get("kind")
    if not isinstance(kind, str) or kind not in MODELS:
        raise ConfigError(source, [_kind_problem(kind)])
    model = MODELS[kind]
    try:
        site = model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError.from_validation(source, exc, model) from None
    site._name = name
    site._source = source
    return cast(Site, site)  # MODELS[kind] is the member of the union for `kind`


def _kind_problem(kind: object) -> str:
    allowed = ", ".join(KINDS)
    if kind is None:
        return f"kind: required key is missing (one of {allowed})"
    close = difflib.get_close_matches(str(kind), KINDS, n=1) if isinstance(kind, str) else []
    hint = f"; did you mean `{close[0]}`?" if close else ""
    return f"kind: unknown site kind {kind!r}{hint} (one of {allowed})"
