"""A Spark application as the console describes it (SparkApp), read from the `spark` pipeline
action's params (Erda's shape, and its `bigDataConf` JSON string) or a dice.yml job with
`engine: spark`, and turned into what a cluster takes: spark-submit's command line, the REST
submission protocol's request, a SparkApplication's spec."""

from __future__ import annotations

import dataclasses
import json
import re
import shlex
from dataclasses import dataclass, field
from typing import Any

from scheduler.base import ExecutorError

TYPES = ("Java", "Scala", "Python")
MIN_MEMORY_MIB = 450  # Spark 4: "System memory ... must be at least 471859200" (bytes)
KINDS = ("client", "cluster")
_MEM = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)
_CONF_KEY = re.compile(r"^[A-Za-z0-9_.\-\[\]]+$")
_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
DEFAULT_REDACTION = "(?i)secret|password|token|access[.]?key"  # Spark's spark.redaction.regex
SECRET_ENVS = "dice.secret.envs"  # job_command's note of the secret names (names only)


@dataclass(frozen=True)
class SparkApp:
    """One Spark application: what to run (`resource`, a .py or .jar path or URL, its `main_class`
    and `args`), how (`type`, `kind`: client or cluster deploy mode), its Spark properties `conf`,
    environment `envs`, and the driver's and executors' resources (cores, MiB, instances)."""

    resource: str
    main_class: str = ""
    args: tuple[str, ...] = ()
    type: str = "Java"
    kind: str = "cluster"
    conf: dict[str, str] = field(default_factory=dict)
    envs: dict[str, str] = field(default_factory=dict)
    name: str = ""
    driver_cores: float = 1
    driver_mem: int = 512  # MiB
    executor_cores: float = 1
    executor_mem: int = 512  # MiB
    executor_instances: int = 1
    # Names among `envs` whose values are secret (addon passwords, `((KEY))` configs, the console's
    # secret variables): Spark redacts them wherever it shows its properties (executor_envs()).
    secret_envs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for what, mib in (("driverResource.memory", self.driver_mem), ("executorResource.memory", self.executor_mem)):
            if mib < MIN_MEMORY_MIB:
                raise ExecutorError(f"{what}: {mib} MiB is less than Spark accepts ({MIN_MEMORY_MIB} MiB: it "
                                    "refuses a driver or executor with less)")

    @property
    def python(self) -> bool:
        return self.type == "Python"

    def properties(self) -> dict[str, str]:
        """Spark properties with the resources (the resources win over a `properties` entry)."""
        return {
            **self.conf,
            "spark.driver.cores": _cores(self.driver_cores),
            "spark.driver.memory": f"{self.driver_mem}m",
            "spark.executor.cores": _cores(self.executor_cores),
            "spark.executor.memory": f"{self.executor_mem}m",
            "spark.executor.instances": str(self.executor_instances),
            # standalone: executor instances are capped by total cores
            "spark.cores.max": _cores(self.executor_cores * self.executor_instances),
            **({"spark.app.name": self.name} if self.name else {}),
        }

    def executor_envs(self, secret_properties: tuple[str, ...] = ()) -> dict[str, str]:
        """The properties that give every executor the application's environment (the driver has it
        as its process's): `spark.executorEnv.<NAME>`, and a `spark.redaction.regex` that also names
        the secret ones (and the properties `secret_properties`), so the Spark UI's Environment page
        and event logs show them redacted (Spark redacts a property whose key or value matches; its
        default catches only names with secret/password/token/access key in them)."""
        out = {f"spark.executorEnv.{k}": v for k, v in sorted(self.envs.items())}
        secret = sorted(n for n in self.secret_envs if n in self.envs)
        parts = ([f"^spark\\.executorEnv\\.(?:{'|'.join(secret)})$"] if secret else []) + \
            [f"^{re.escape(key)}$" for key in sorted(secret_properties)]
        if parts:
            base = self.conf.get("spark.redaction.regex") or DEFAULT_REDACTION
            out["spark.redaction.regex"] = "|".join([base, *parts])
        return out

    def placed_properties(self, secret_values: tuple[str, ...] = ()) -> tuple[SparkApp, dict[str, str]]:
        """What must not go on spark-submit's command line (which `ps` shows and a job's record
        keeps), for a 0600 file given with --properties-file: (the app without it, the file's
        properties). That is the executors' environment (executor_envs), every property whose value
        holds one of `secret_values` (a pipeline's secret config filled into `properties`), named in
        the redaction regex too, and the redaction regex itself (on the command line a `--conf`
        would win over the file's)."""
        secret = tuple(sorted(key for key, value in self.conf.items()
                              if any(s and s in value for s in secret_values)))
        placed = {**{key: self.conf[key] for key in secret}, **self.executor_envs(secret)}
        return dataclasses.replace(self, conf={k: v for k, v in self.conf.items() if k not in placed}), placed

    def submit_args(self, master: str, deploy_mode: str) -> list[str]:
        """spark-submit's arguments after the program name."""
        argv = ["--master", master, "--deploy-mode", deploy_mode]
        if self.main_class and not self.python:
            argv += ["--class", self.main_class]
        for key, value in sorted(self.properties().items()):
            argv += ["--conf", f"{key}={value}"]
        return [*argv, self.resource, *self.args]

    def as_dict(self) -> dict[str, Any]:
        return {"resource": self.resource, "class": self.main_class, "args": list(self.args), "type": self.type,
                "kind": self.kind, "properties": dict(self.conf), "envs": dict(self.envs), "name": self.name,
                "driver": {"cpu": self.driver_cores, "memory": self.driver_mem},
                "executor": {"cpu": self.executor_cores, "memory": self.executor_mem,
                             "replica": self.executor_instances}}


def _cores(value: float) -> str:
    return str(max(1, int(round(value + 0.4999))))  # Spark takes whole cores: 0.5 asks for 1


def memory_mib(value: Any, where: str) -> int:
    """MiB from 1024, "1024", "512m", "1g", "1.5GiB" (a bare number is MiB, as in Erda)."""
    if isinstance(value, bool):
        raise ExecutorError(f"{where}: a memory size, not {value!r}")
    if isinstance(value, int | float):
        mib = float(value)
    else:
        match = _MEM.match(str(value))
        if not match:
            raise ExecutorError(f"{where}: {value!r} is not a memory size (e.g. 512, \"512m\", \"1g\")")
        number, unit = float(match[1]), match[2].lower()
        mib = number * {"": 1, "k": 1 / 1024, "m": 1, "g": 1024, "t": 1024 * 1024}[unit]
    if mib < 32 or mib > 1024 * 1024:
        raise ExecutorError(f"{where}: {value!r} MiB is out of range (32 MiB to 1 TiB)")
    return int(mib)


def _number(value: Any, where: str, *, integer: bool = False, low: float = 0.0) -> float:
    try:
        number = int(value) if integer else float(value)
    except (TypeError, ValueError):
        raise ExecutorError(f"{where}: {value!r} is not a number") from None
    if isinstance(value, bool) or number <= low or number > 1024:
        raise ExecutorError(f"{where}: {value!r} is out of range")
    return number


def _str_map(raw: Any, where: str, key_pattern: re.Pattern) -> dict[str, str]:
    if raw in (None, "", {}):
        return {}
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raise ExecutorError(f"{where}: a map, or a JSON object in a string") from None
    if not isinstance(raw, dict):
        raise ExecutorError(f"{where}: a map of names to values, not {type(raw).__name__}")
    out = {}
    for key, value in raw.items():
        if not key_pattern.match(str(key)):
            raise ExecutorError(f"{where}: {key!r} is not a valid name")
        if isinstance(value, dict | list):
            raise ExecutorError(f"{where}.{key}: a plain value, not a {type(value).__name__}")
        out[str(key)] = "" if value is None else (str(value).lower() if isinstance(value, bool) else str(value))
    return out


def _args(raw: Any, where: str) -> tuple[str, ...]:
    if raw in (None, ""):
        return ()
    if isinstance(raw, str):
        return tuple(shlex.split(raw))
    if not isinstance(raw, list) or any(isinstance(a, dict | list) for a in raw):
        raise ExecutorError(f"{where}: a list of arguments (or one string)")
    return tuple(str(a) for a in raw)


def from_params(params: dict[str, Any], where: str = "spark") -> SparkApp:
    """The app of a `spark` action's params (or a dice.yml spark job's fields): `resource`,
    `class`, `args`, `envs`, `properties`, `sparkConf {type, kind, driverResource {cpu, memory},
    executorResource {cpu, memory, replica}}`, `name`; or Erda's `bigDataConf`, a JSON string of
    {name, spec: {the same}}. Every mistake names the param."""
    params = dict(params or {})
    if params.get("bigDataConf") not in (None, ""):
        raw = params.pop("bigDataConf")
        try:
            conf = json.loads(raw) if isinstance(raw, str) else raw
        except ValueError as exc:
            raise ExecutorError(f"{where}.bigDataConf: not valid JSON ({exc.msg} at character {exc.pos})") from None
        if not isinstance(conf, dict):
            raise ExecutorError(f"{where}.bigDataConf: a JSON object {{\"name\", \"spec\"}}")
        spec = conf.get("spec", conf)
        if not isinstance(spec, dict):
            raise ExecutorError(f"{where}.bigDataConf.spec: an object")
        params = {**spec, **{k: v for k, v in params.items() if v not in (None, "")}}
        params.setdefault("name", conf.get("name") or "")
        where = f"{where}.bigDataConf"
    resource = str(params.get("resource") or "").strip()
    if not resource:
        raise ExecutorError(f"{where}.resource: the application to run (a .py or .jar path or URL) is required")
    spark_conf = params.get("sparkConf") or {}
    if isinstance(spark_conf, str):
        try:
            spark_conf = json.loads(spark_conf)
        except ValueError:
            raise ExecutorError(f"{where}.sparkConf: an object, or a JSON object in a string") from None
    if not isinstance(spark_conf, dict):
        raise ExecutorError(f"{where}.sparkConf: an object {{type, kind, driverResource, executorResource}}")
    default_type = "Python" if resource.lower().endswith(".py") else "Java"
    app_type = str(spark_conf.get("type") or default_type).capitalize()
    if app_type not in TYPES:
        raise ExecutorError(f"{where}.sparkConf.type: {spark_conf.get('type')!r} is not one of {', '.join(TYPES)}")
    kind = str(spark_conf.get("kind") or "cluster").lower()
    if kind not in KINDS:
        raise ExecutorError(f"{where}.sparkConf.kind: {spark_conf.get('kind')!r} is not client or cluster")
    main_class = str(params.get("class") or "").strip()
    if app_type != "Python" and not main_class:
        raise ExecutorError(f"{where}.class: a {app_type} application needs its main class")
    driver = _resource(spark_conf.get("driverResource"), f"{where}.sparkConf.driverResource")
    executor = _resource(spark_conf.get("executorResource"), f"{where}.sparkConf.executorResource")
    return SparkApp(
        resource=resource, main_class=main_class, args=_args(params.get("args"), f"{where}.args"),
        type=app_type, kind=kind,
        conf=_str_map(params.get("properties"), f"{where}.properties", _CONF_KEY),
        envs=_str_map(params.get("envs"), f"{where}.envs", _ENV_KEY),
        name=str(params.get("name") or "")[:100],
        driver_cores=driver.get("cpu", 1), driver_mem=driver.get("memory", 512),
        executor_cores=executor.get("cpu", 1), executor_mem=executor.get("memory", 512),
        executor_instances=executor.get("replica", 1),
    )


def _resource(raw: Any, where: str) -> dict[str, Any]:
    if raw in (None, ""):
        return {}
    if not isinstance(raw, dict):
        raise ExecutorError(f"{where}: an object {{cpu, memory}}")
    out: dict[str, Any] = {}
    if raw.get("cpu") not in (None, ""):
        out["cpu"] = _number(raw["cpu"], f"{where}.cpu")
    if raw.get("memory") not in (None, ""):
        out["memory"] = memory_mib(raw["memory"], f"{where}.memory")
    if raw.get("replica") not in (None, ""):
        out["replica"] = int(_number(raw["replica"], f"{where}.replica", integer=True))
    return out


def job_command(app: SparkApp) -> list[str]:
    """The app as a JobSpec's command: spark-submit's line without --master (the cluster
    running it decides that); the kind's driver reads it back with from_command."""
    argv = ["spark-submit", "--deploy-mode", app.kind, "--conf", f"dice.app.type={app.type}"]
    if app.main_class and not app.python:
        argv += ["--class", app.main_class]
    for key, value in sorted(app.properties().items()):
        argv += ["--conf", f"{key}={value}"]
    if app.secret_envs:
        argv += ["--conf", f"{SECRET_ENVS}={','.join(sorted(app.secret_envs))}"]
    return [*argv, app.resource, *app.args]


def from_command(command: list[str], envs: dict[str, str] | None = None, name: str = "") -> SparkApp:
    """The SparkApp of a spark-submit command line (job_command's, or one written by hand:
    `spark-submit [--class C] [--deploy-mode M] [--conf k=v]... [--driver-memory 1g] RESOURCE ARGS`)."""
    if not command or command[0] != "spark-submit":
        raise ExecutorError(f"job {name!r}: a Spark job's command is a spark-submit line, not {command[:1]!r}")
    conf: dict[str, str] = {}
    main_class, kind, app_type = "", "cluster", ""
    secret: tuple[str, ...] = ()
    options = {"--driver-memory": "spark.driver.memory", "--executor-memory": "spark.executor.memory",
               "--driver-cores": "spark.driver.cores", "--executor-cores": "spark.executor.cores",
               "--num-executors": "spark.executor.instances", "--name": "spark.app.name",
               "--total-executor-cores": "spark.cores.max"}
    rest = list(command[1:])
    while rest and rest[0].startswith("--"):
        flag = rest.pop(0)
        if not rest:
            raise ExecutorError(f"job {name!r}: spark-submit {flag} needs a value")
        value = rest.pop(0)
        if flag == "--class":
            main_class = value
        elif flag == "--deploy-mode":
            kind = value
        elif flag == "--conf":
            key, sep, val = value.partition("=")
            if not sep or not _CONF_KEY.match(key):
                raise ExecutorError(f"job {name!r}: --conf {value!r} is not key=value")
            if key == "dice.app.type":
                app_type = val
            elif key == SECRET_ENVS:
                secret = tuple(n for n in val.split(",") if n)
            else:
                conf[key] = val
        elif flag in options:
            conf[options[flag]] = value
        else:
            raise ExecutorError(f"job {name!r}: spark-submit option {flag} is not supported here "
                                "(use --conf spark.<property>=<value>)")
    if not rest:
        raise ExecutorError(f"job {name!r}: spark-submit names no application (a .py or .jar)")
    resource, args = rest[0], tuple(rest[1:])
    app_type = app_type or ("Python" if resource.lower().endswith(".py") else "Java")
    if kind not in KINDS or app_type not in TYPES:
        raise ExecutorError(f"job {name!r}: deploy mode {kind!r} / type {app_type!r} is not supported")

    def mem(key: str) -> int:
        return memory_mib(conf.pop(key), f"job {name!r}: {key}") if key in conf else 512

    def num(key: str, default: float) -> float:
        return _number(conf.pop(key), f"job {name!r}: {key}") if key in conf else default

    driver_mem, executor_mem = mem("spark.driver.memory"), mem("spark.executor.memory")
    driver_cores, executor_cores = num("spark.driver.cores", 1), num("spark.executor.cores", 1)
    instances = int(num("spark.executor.instances", 1))
    conf.pop("spark.cores.max", None)
    app_name = conf.pop("spark.app.name", "")
    return SparkApp(resource=resource, main_class=main_class, args=args, type=app_type, kind=kind, conf=conf,
                    envs=dict(envs or {}), name=app_name, driver_cores=driver_cores, driver_mem=driver_mem,
                    executor_cores=executor_cores, executor_mem=executor_mem, executor_instances=instances,
                    secret_envs=secret)


def java_properties(props: dict[str, str]) -> str:
    """`props` as a Java properties file (spark-submit --properties-file): one `key=value` a line,
    escaped so that no value can end its line or start another entry."""
    def escape(text: str, key: bool) -> str:
        out = []
        for i, ch in enumerate(text):
            if ch == "\\":
                out.append("\\\\")
            elif ch in "\n\r\t\f":
                out.append({"\n": "\\n", "\r": "\\r", "\t": "\\t", "\f": "\\f"}[ch])
            elif (key and ch in "=: #!") or (ch == " " and i == 0):
                out.append("\\" + ch)
            elif ord(ch) < 0x20 or ord(ch) > 0x7E:
                out.extend(f"\\u{unit:04x}" for unit in _utf16(ch))
            else:
                out.append(ch)
        return "".join(out)
    return "".join(f"{escape(k, True)}={escape(v, False)}\n" for k, v in sorted(props.items()))


def _utf16(ch: str) -> list[int]:
    data = ch.encode("utf-16-be")
    return [int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2)]
