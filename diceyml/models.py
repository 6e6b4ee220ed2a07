"""Typed models of a dice.yml (pydantic v2): every short form normalised, every default explicit."""

from __future__ import annotations

import ipaddress
import re
import shlex
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    computed_field,
    field_validator,
    model_validator,
)

from diceyml import normalize as nz
from pipelineyml.cron import cron_problems

DEFAULT_CPU = 0.1  # cores, when a service gives none
DEFAULT_MEM = 128  # MiB, when a service gives none
DEFAULT_HEALTH_DURATION = 120  # seconds a service may take to become healthy
# `protocol` is the application protocol (any name: HTTP, HTTPS, GRPC, DNS, ...); `l4_protocol`
# the transport the cluster carries it over.
L4_PROTOCOLS = ("TCP", "UDP")
_PROTOCOL_NAME = re.compile(r"[A-Z][A-Z0-9_.+-]{0,31}")
# Container fields a service may merge through k8s_snippet.container; the rest we own.
K8S_CONTAINER_FIELDS = (
    "args",
    "command",
    "env",
    "envFrom",
    "imagePullPolicy",
    "lifecycle",
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
    "securityContext",
    "stdin",
    "stdinOnce",
    "terminationMessagePath",
    "terminationMessagePolicy",
    "tty",
    "volumeDevices",
    "volumeMounts",
    "workingDir",
)

_Scalar = str | int | float | bool | None
_Text = Annotated[str, BeforeValidator(nz.string_value, json_schema_input_type=_Scalar)]
StrMap = Annotated[dict[str, _Text], BeforeValidator(nz.string_map)]
Command = Annotated[str, BeforeValidator(nz.command_text, json_schema_input_type=str | list[str])]
PortNumber = Annotated[int, Field(ge=1, le=65535)]
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
_DOMAIN = re.compile(
    r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?|\*)"
)
_ALIAS = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class SpecModel(BaseModel):
    """Base of the dice.yml models: unknown keys are errors, fields keep their YAML names."""

    model_config = ConfigDict(extra="forbid", validate_default=False)


def _env_names(value: dict[str, str]) -> dict[str, str]:
    for name in value:
        if not _ENV_NAME.fullmatch(name):
            raise nz.fail("env_name", f"'{name}' is not a valid environment variable name")
    return value


class Port(SpecModel):
    """A port the service listens on; `protocol` is what it speaks, `l4_protocol` the transport."""

    port: PortNumber
    protocol: str = "TCP"
    l4_protocol: Literal[L4_PROTOCOLS] = "TCP"  # type: ignore[valid-type]
    expose: bool = False
    default: bool = False

    @field_validator("protocol")
    @classmethod
    def _protocol(cls, value: str) -> str:
        if not _PROTOCOL_NAME.fullmatch(value):
            raise nz.fail(
                "protocol",
                f"'{value}' is not a protocol name: use a name such as TCP, UDP, HTTP, HTTPS, GRPC or DNS",
            )
        return value

    @model_validator(mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        if isinstance(value, dict):
            value = dict(value)
            for key in ("protocol", "l4_protocol"):
                if isinstance(value.get(key), str):
                    value[key] = value[key].strip().upper()
            if "l4_protocol" not in value:
                value["l4_protocol"] = (
                    value.get("protocol") if value.get("protocol") in L4_PROTOCOLS else "TCP"
                )
        return value


PortItem = Annotated[Port, BeforeValidator(nz.port, json_schema_input_type=int | str | Port)]


class Network(SpecModel):
    """Network settings of a service's containers."""

    mode: Literal["container", "host", "bridge"] = "container"


class Resources(SpecModel):
    """Compute asked for: cpu in cores, memory and disk in MiB; max_* are the limits when given."""

    cpu: float = Field(DEFAULT_CPU, gt=0)
    mem: int = Field(DEFAULT_MEM, gt=0)
    max_cpu: float | None = Field(None, gt=0)
    max_mem: int | None = Field(None, gt=0)
    disk: int = Field(0, ge=0)
    network: Network = Field(default_factory=Network)
    emptydir_size: int | None = Field(None, ge=0)
    ephemeral_storage_size: int | None = Field(None, ge=0)


class Autoscale(SpecModel):
    """Horizontal autoscaling: between `min` and `max` replicas, aiming at these average
    utilisations of each replica's requested CPU and memory (a HorizontalPodAutoscaler on
    Kubernetes, the local engine's autoscaler on local)."""

    min: int = Field(1, ge=1, le=1000)
    max: int = Field(ge=1, le=1000)
    cpu_percent: int | None = Field(None, ge=1, le=1000)
    mem_percent: int | None = Field(None, ge=1, le=1000)

    @model_validator(mode="after")
    def _bounds(self) -> Autoscale:
        if self.max < self.min:
            raise nz.fail("autoscale", f"max ({self.max}) is below min ({self.min})")
        if self.cpu_percent is None and self.mem_percent is None:
            raise nz.fail("autoscale", "give cpu_percent, mem_percent or both: what the replicas should use on average")
        return self

    def clamp(self, replicas: int) -> int:
        return max(self.min, min(self.max, replicas))


class Deployments(SpecModel):
    """How many instances run and where."""

    replicas: int = Field(1, ge=0)
    policies: Literal["shuffle", "affinity", "unique"] = "shuffle"
    labels: StrMap = Field(default_factory=dict)
    workload: Literal["default", "per_node"] = "default"
    selectors: Annotated[
        dict[str, list[str]], BeforeValidator(nz.selectors, json_schema_input_type=dict[str, Any])
    ] = Field(default_factory=dict)
    # The replicas follow the load between min and max; `replicas` is where a first deploy starts.
    autoscale: Autoscale | None = None

    @field_validator("policies", "workload", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip().lower()
            return value or None
        return value

    @model_validator(mode="before")
    @classmethod
    def _drop_nulls(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: v for k, v in value.items() if not (k in ("policies", "workload") and not v)}
        return value

    @model_validator(mode="after")
    def _one_per_node_is_fixed(self) -> Deployments:
        if self.autoscale is not None and self.workload == "per_node":
            raise nz.fail("autoscale", "a per_node workload runs one replica per node: it cannot autoscale")
        return self


class Bind(SpecModel):
    """A host path mounted into the container: both paths absolute, mode rw (default) or ro."""

    host: str = Field(min_length=1)
    container: str = Field(min_length=1)
    type: str = "rw"

    @field_validator("host")
    @classmethod
    def _host_absolute(cls, value: str) -> str:
        # Install-time template text (`<%...%>`, kept as written) may stand for the absolute start.
        if not value.startswith(("/", "<%", "${")):
            raise nz.fail("bind", f"the host path must be absolute, got '{value}'")
        return value

    @field_validator("container")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise nz.fail("bind", f"the container path must be absolute, got '{value}'")
        return value

    @field_validator("type")
    @classmethod
    def _mode(cls, value: str) -> str:
        if value not in ("rw", "ro"):
            raise nz.fail("bind", f"the mode must be rw or ro, got '{value}'")
        return value


BindItem = Annotated[Bind, BeforeValidator(nz.bind, json_schema_input_type=str | Bind)]


class Volume(SpecModel):
    """A persistent volume mounted at `targetPath`; `size` in GiB, `type` the storage kind."""

    name: str = ""
    type: str = Field("local", min_length=1)
    size: int | None = Field(None, ge=1)
    target_path: str = Field(alias="targetPath", min_length=1)
    read_only: bool = Field(False, alias="readOnly")

    @field_validator("target_path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise nz.fail("volume", f"targetPath must be absolute, got '{value}'")
        return value

    @model_validator(mode="after")
    def _named(self) -> Volume:
        if not self.name:
            self.name = nz.volume_name(self.target_path)
        return self


VolumeItem = Annotated[Volume, BeforeValidator(nz.volume, json_schema_input_type=str | Volume)]


class HttpCheck(SpecModel):
    """Healthy when GET http://<pod>:port/path answers 2xx/3xx."""

    port: PortNumber
    path: str = "/"
    duration: int = Field(DEFAULT_HEALTH_DURATION, ge=0)

    @field_validator("path")
    @classmethod
    def _slash(cls, value: str) -> str:
        if not value.startswith("/"):
            raise nz.fail("path", f"the path must start with '/', got '{value}'")
        return value


class ExecCheck(SpecModel):
    """Healthy when the command exits 0."""

    cmd: Command = Field(min_length=1)
    duration: int = Field(DEFAULT_HEALTH_DURATION, ge=0)


class HealthCheck(SpecModel):
    """Exactly one of `http` or `exec` (empty blocks are dropped before this point)."""

    http: HttpCheck | None = None
    exec: ExecCheck | None = None

    @model_validator(mode="after")
    def _one(self) -> HealthCheck:
        if self.http is not None and self.exec is not None:
            raise nz.fail("health_check", "give either http or exec, not both")
        return self

    @property
    def kind(self) -> str:
        return "http" if self.http is not None else "exec"

    @property
    def duration(self) -> int:
        check = self.http if self.http is not None else self.exec
        return check.duration if check is not None else DEFAULT_HEALTH_DURATION


HealthCheckField = Annotated[
    HealthCheck | None, BeforeValidator(nz.health_check, json_schema_input_type=HealthCheck | None)
]


def _word_list(value: Any) -> Any:
    """A list of words given as a list, or as one string separated by commas or spaces."""
    if isinstance(value, str):
        return [w for w in re.split(r"[\s,]+", value.strip()) if w]
    return value


WordList = Annotated[list[str], BeforeValidator(_word_list, json_schema_input_type=str | list[str])]


class CorsPolicy(SpecModel):
    """Cross-origin requests allowed on an endpoint; `allow_origins: any` (or `*`) allows all."""

    allow_origins: WordList = Field(default_factory=lambda: ["*"])
    allow_methods: WordList = Field(
        default_factory=lambda: ["GET", "PUT", "POST", "DELETE", "PATCH", "OPTIONS"]
    )
    allow_headers: WordList = Field(default_factory=list)
    expose_headers: WordList = Field(default_factory=list)
    allow_credentials: bool = False
    max_age: int = Field(1728000, ge=0)

    @field_validator("allow_origins")
    @classmethod
    def _any(cls, value: list[str]) -> list[str]:
        return ["*" if v.lower() == "any" else v for v in value] or ["*"]


class RateLimitPolicy(SpecModel):
    """Requests per second an endpoint accepts (per client address)."""

    qps: int = Field(gt=0)
    burst: int | None = Field(None, ge=0)


class EndpointPolicies(SpecModel):
    """Policies of an endpoint (Erda's gateway policies); `cors: {}` allows any origin, `cors:`
    with nothing (null) is no CORS policy, as in Erda."""

    cors: CorsPolicy | None = None
    rate_limit: RateLimitPolicy | None = None


class TrafficSecurity(SpecModel):
    """`mode: https` asks for TLS on the service's endpoints."""

    mode: Literal["https", ""] = ""

    @field_validator("mode", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else ("" if value is None else value)


class Endpoint(SpecModel):
    """An HTTP route to the service; a domain ending in `.*` takes the cluster's wildcard domain."""

    domain: str
    path: str = "/"
    backend_path: str = ""
    policies: EndpointPolicies = Field(default_factory=EndpointPolicies)

    @field_validator("policies", mode="before")
    @classmethod
    def _no_policies(cls, value: Any) -> Any:
        return {} if value is None else value

    @field_validator("domain")
    @classmethod
    def _domain(cls, value: str) -> str:
        value = value.strip().lower()
        if not _DOMAIN.fullmatch(value):
            raise nz.fail("domain", f"'{value}' is not a valid domain (or 'name.*' for the cluster's domain)")
        return value

    @field_validator("path", "backend_path")
    @classmethod
    def _slash(cls, value: str) -> str:
        if value and not value.startswith("/"):
            raise nz.fail("path", f"the path must start with '/', got '{value}'")
        return value

    @model_validator(mode="after")
    def _backend(self) -> Endpoint:
        if not self.backend_path:
            self.backend_path = self.path
        return self

    @property
    def wildcard(self) -> bool:
        return self.domain.endswith(".*")


class K8sSnippet(SpecModel):
    """Kubernetes fields merged into the generated objects (today only the container)."""

    container: dict[str, Any] = Field(default_factory=dict)

    @field_validator("container")
    @classmethod
    def _known(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key in value:
            if key not in K8S_CONTAINER_FIELDS:
                hint = nz.did_you_mean_hint(key, K8S_CONTAINER_FIELDS)
                raise nz.fail("k8s_snippet", f"'{key}' cannot be set through k8s_snippet.container{hint}")
        return value


class SharedDir(SpecModel):
    """A directory shared between the main container and an init or sidecar container."""

    main: str
    sidecar: str


class InitContainer(SpecModel):
    """A container that runs to completion before the main one starts."""

    image: str = Field(min_length=1)
    cmd: Command = ""
    envs: StrMap = Field(default_factory=dict)
    resources: Resources = Field(default_factory=Resources)
    shared_dirs: Annotated[list[SharedDir], BeforeValidator(nz.empty_list)] = Field(default_factory=list)


class Sidecar(InitContainer):
    """A container that runs beside the main one for the service's whole life; without `image`,
    the release's image map gives it (by sidecar name, as for services)."""

    image: str = ""

    @field_validator("image", mode="before")
    @classmethod
    def _image(cls, value: Any) -> Any:
        return "" if value is None else value


class _Workload(SpecModel):
    """Fields services and jobs share."""

    image: str = ""
    cmd: Command = ""
    envs: StrMap = Field(default_factory=dict)
    resources: Resources = Field(default_factory=Resources)
    labels: StrMap = Field(default_factory=dict)
    binds: Annotated[list[BindItem], BeforeValidator(nz.empty_list)] = Field(default_factory=list)
    volumes: Annotated[list[VolumeItem], BeforeValidator(nz.empty_list)] = Field(default_factory=list)
    init: dict[str, InitContainer] = Field(default_factory=dict)

    @field_validator("envs")
    @classmethod
    def _env_names(cls, value: dict[str, str]) -> dict[str, str]:
        return _env_names(value)

    @field_validator("image", mode="before")
    @classmethod
    def _image(cls, value: Any) -> Any:
        return "" if value is None else value


def _host_entry(entry: str) -> str:
    parts = entry.split()
    try:
        ipaddress.ip_address(parts[0] if parts else "")
    except ValueError:
        raise nz.fail("hosts", f"a hosts entry must be 'ip name...', got '{entry}'")
    if len(parts) < 2:
        raise nz.fail("hosts", f"a hosts entry must name a host after the ip, got '{entry}'")
    return entry


HostEntry = Annotated[str, AfterValidator(_host_entry)]


class Service(_Workload):
    """A long-running service: a Deployment (or one pod per node) behind a cluster Service."""

    image_username: str | None = None
    image_password: str | None = None
    ports: Annotated[list[PortItem], BeforeValidator(nz.empty_list)] = Field(default_factory=list)
    hosts: Annotated[list[HostEntry], BeforeValidator(nz.empty_list)] = Field(default_factory=list)
    deployments: Deployments = Field(default_factory=Deployments)
    depends_on: Annotated[list[str], BeforeValidator(nz.empty_list)] = Field(default_factory=list)
    expose: Annotated[list[PortNumber], BeforeValidator(nz.empty_list)] = Field(default_factory=list)
    health_check: HealthCheckField = None
    sidecars: dict[str, Sidecar] = Field(default_factory=dict)
    annotations: StrMap = Field(default_factory=dict)
    endpoints: Annotated[list[Endpoint], BeforeValidator(nz.empty_list)] = Field(default_factory=list)
    traffic_security: TrafficSecurity = Field(default_factory=TrafficSecurity)
    k8s_snippet: K8sSnippet | None = None
    # Where the service runs: "" on the workspace's cluster, "flink" as a streaming job on the
    # workspace's Flink data cluster (cmd is `flink run` arguments; replicas is the parallelism).
    engine: Literal["", "flink"] = ""

    @field_validator("engine", mode="before")
    @classmethod
    def _engine(cls, value: Any) -> Any:
        return "" if value is None else value

    @model_validator(mode="after")
    def _flink_service(self) -> Service:
        if self.engine == "flink":
            if not self.cmd.strip():
                raise nz.fail("engine", "an `engine: flink` service needs a cmd: the `flink run` arguments "
                                        "(e.g. -py count.py, or -c Main job.jar)")
            if self.ports or self.expose or self.health_check is not None or self.sidecars:
                raise nz.fail("engine", "an `engine: flink` service is a Flink job: it has no ports, expose, "
                                        "health_check or sidecars (its health is the job's state)")
        return self

    @field_validator("traffic_security", mode="before")
    @classmethod
    def _no_security(cls, value: Any) -> Any:
        return {} if value is None else value

    @property
    def https(self) -> bool:
        """Whether the service asks for TLS on its endpoints (`traffic_security.mode: https`)."""
        return self.traffic_security.mode == "https"

    @model_validator(mode="after")
    def _legacy_expose(self) -> Service:
        exposed = set(self.expose)
        for item in self.ports:
            if item.port in exposed:
                item.expose = True
        return self

    @property
    def default_port(self) -> Port | None:
        """The port other services reach first (`<NAME>_PORT`): the one marked default, else the first."""
        for item in self.ports:
            if item.default:
                return item
        return self.ports[0] if self.ports else None


ENGINES = ("spark", "flink")  # data engines a job may run on (the workspace's data cluster of that engine)
_ENGINE_FIELDS = ("resource", "class", "args", "properties", "sparkConf", "flinkConf")


def _args_list(value: Any) -> Any:
    if isinstance(value, str):
        return shlex.split(value)
    return value


class Job(_Workload):
    """A run-to-completion job; with `schedule` a CronJob, with `broadcast` one run per node. With
    `engine` (spark, flink) it is an application of that data engine, run on the workspace's data
    cluster: `resource` (a .py or .jar path or URL), `class`, `args`, `properties` (sparkConf, or
    Flink configuration `-D key=value`) and `sparkConf` as the `spark` pipeline action takes them,
    or `flinkConf` {kind, parallelism, jobManagerResource, taskManagerResource} as the `flink`
    action does; `envs` its environment."""

    schedule: str | None = None
    broadcast: bool = False
    backoff_limit: int = Field(0, ge=0)
    active_deadline: int | None = Field(None, gt=0)
    engine: str | None = None
    resource: str | None = None
    class_: str | None = Field(None, alias="class")
    args: Annotated[list[_Text], BeforeValidator(_args_list)] = Field(default_factory=list)
    properties: StrMap = Field(default_factory=dict)
    sparkConf: dict[str, Any] | None = None
    flinkConf: dict[str, Any] | None = None

    @field_validator("engine")
    @classmethod
    def _engine(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if value not in ENGINES:
            raise nz.fail("engine", f"engine '{value}' is not supported: leave it out (the job runs on the "
                                    f"workspace's cluster) or use {' or '.join(ENGINES)} (its data cluster)")
        return value

    @model_validator(mode="after")
    def _engine_fields(self) -> Job:
        given = [name for name in _ENGINE_FIELDS if self._engine_value(name) not in (None, [], {}, "")]
        if not self.engine:
            if given:
                raise nz.fail("engine", f"{', '.join(given)} belong to a data engine's job: add engine: spark "
                                        "(or flink), or remove them")
            return self
        if not self.resource:
            raise nz.fail("resource", f"a job with engine: {self.engine} needs resource (the .py or .jar to run)")
        if self.cmd or self.broadcast:
            raise nz.fail("engine", f"a job with engine: {self.engine} runs its resource, not cmd or broadcast")
        if self.sparkConf is not None and self.engine != "spark":
            raise nz.fail("sparkConf", f"sparkConf is for engine: spark, not {self.engine}")
        if self.flinkConf is not None and self.engine != "flink":
            raise nz.fail("flinkConf", f"flinkConf is for engine: flink, not {self.engine}")
        return self

    def _engine_value(self, name: str) -> Any:
        return getattr(self, "class_" if name == "class" else name)

    def engine_params(self) -> dict[str, Any]:
        """The job as the engine's action params (what the `spark` or `flink` pipeline action takes)."""
        params = {"resource": self.resource, "class": self.class_ or "", "args": list(self.args),
                  "envs": dict(self.envs), "properties": dict(self.properties)}
        if self.sparkConf is not None:
            params["sparkConf"] = self.sparkConf
        if self.flinkConf is not None:
            params["flinkConf"] = self.flinkConf
        return params

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        """The same cron rules as a pipeline's `cron` (pipelineyml.cron), limited to what a
        CronJob runs: 5 fields (minute hour day-of-month month day-of-week) or @hourly ... @yearly."""
        if value is None:
            return None
        value = " ".join(value.split())
        if value.startswith("@every"):
            raise nz.fail(
                "schedule",
                f"'{value}': a job schedule is a 5-field cron expression or @hourly, "
                "@daily, @weekly, @monthly, @yearly (no @every)",
            )
        if not value.startswith("@") and len(value.split(" ")) != 5:
            raise nz.fail(
                "schedule",
                f"schedule must be a 5-field cron expression "
                f"(minute hour day-of-month month day-of-week), got '{value}'",
            )
        problems = cron_problems(value)
        if problems:
            raise nz.fail("schedule", f"schedule '{value}': {problems[0]}")
        return value


class Addon(SpecModel):
    """A managed middleware instance; `plan` is canonical `<type>:<size>` (legacy sizes mapped)."""

    plan: str
    as_: str | None = Field(None, alias="as")
    options: StrMap = Field(default_factory=dict)
    image: str | None = None

    @field_validator("plan", mode="before")
    @classmethod
    def _plan(cls, value: Any) -> Any:
        return nz.canonical_plan(value)

    @field_validator("as_")
    @classmethod
    def _alias(cls, value: str | None) -> str | None:
        if value is not None and not _ALIAS.fullmatch(value):
            raise nz.fail("as", f"'as' must be a variable-name prefix like MYSQL or ORDER_DB, got '{value}'")
        return value

    @computed_field  # type: ignore[prop-decorator]
    @property
    def type(self) -> str:
        return self.plan.partition(":")[0]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def size(self) -> str:
        """The size asked for; a bare `plan: <type>` takes the default size."""
        return self.plan.partition(":")[2] or nz.DEFAULT_SIZE

    @property
    def size_given(self) -> bool:
        """Whether the plan names a size (`mysql:basic`) rather than the bare type (`mysql`)."""
        return ":" in self.plan

    @property
    def env_prefix(self) -> str:
        """Prefix of the variables a service sees (MYSQL_, REDIS_ ... or `as`)."""
        if self.as_:
            return self.as_.upper()
        return nz.ADDON_ENV_PREFIX.get(self.type, self.type.upper().replace("-", "_"))


class DiceYml(SpecModel):
    """A whole dice.yml after environment merging and value filling for one workspace (or none)."""

    version: Literal["2.0"] | None = None
    meta: StrMap = Field(default_factory=dict)
    envs: StrMap = Field(default_factory=dict)
    services: dict[str, Service] = Field(default_factory=dict)
    jobs: dict[str, Job] = Field(default_factory=dict)
    addons: dict[str, Addon] = Field(default_factory=dict)
    environments: dict[str, dict[str, Any]] = Field(default_factory=dict)
    values: dict[str, dict[str, _Scalar]] = Field(default_factory=dict)
    _environment: str | None = PrivateAttr(None)
    _warnings: list = PrivateAttr(default_factory=list)

    @property
    def warnings(self) -> list:
        """SpecErrors that do not refuse the file (deprecated forms), found when it was parsed."""
        return self._warnings

    @property
    def environment(self) -> str | None:
        """The environment merged in (development, test, staging, production), or None for the base."""
        return self._environment

    @field_validator("version", mode="before")
    @classmethod
    def _version(cls, value: Any) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool) and value == 2:
            return "2.0"
        if value == "2":
            return "2.0"
        if value is not None and value != "2.0":
            raise nz.fail("version", f'unsupported version {value!r}: a dice.yml must have version "2.0"')
        return value

    @field_validator("envs")
    @classmethod
    def _env_names(cls, value: dict[str, str]) -> dict[str, str]:
        return _env_names(value)

    def service_envs(self, name: str) -> dict[str, str]:
        """Envs a service or job gets from the file: the top-level envs, then its own on top."""
        workload = self.services.get(name) or self.jobs.get(name)
        own = workload.envs if workload is not None else {}
        return {**self.envs, **own}

    def effective(self) -> dict:
        """Plain data of the spec as it deploys (no environments or values left): for release diffs."""
        return self.model_dump(mode="json", by_alias=True, exclude={"environments", "values"})


class EnvironmentOverlay(SpecModel):
    """What `environments.<name>` may hold; merged over the base (schema only: merged before use)."""

    envs: StrMap = Field(default_factory=dict)
    services: dict[str, Service] = Field(default_factory=dict)
    addons: dict[str, Addon] = Field(default_factory=dict)
