"""The `flink` pipeline action's params (Erda-compatible) and the `flink run` arguments they mean.

Params, as Erda's action takes them: `resource` (the jar, or a PyFlink .py program, in the run's
directories: `${{ dirs.build }}/job.jar`), `class` (the jar's entry class), `args` (a list, or
one string split like a shell), `flinkConf` {kind: FlinkJob|FlinkSession, parallelism,
jobManagerResource, taskManagerResource}, or all of these as the JSON string `bigDataConf`
(Erda's form; the explicit params win); ours: `detach: true` ends the step once the job runs (a
streaming job), else it ends with the job.

On a session cluster a FlinkJob runs as a session job and the JobManager/TaskManager resources
are the cluster's own (the step's log says so); on Kubernetes with the Flink operator a FlinkJob
is a FlinkDeployment of its own (application mode, sized by those resources) and a FlinkSession
a FlinkSessionJob on the session deployment named by `flinkConf.session`.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field

from scheduler.base import ExecutorError

KINDS = ("FlinkJob", "FlinkSession")


@dataclass(frozen=True)
class FlinkAction:
    """A `flink` step's params, read and checked."""

    resource: str
    entry_class: str = ""
    args: tuple[str, ...] = ()
    kind: str = "FlinkSession"
    parallelism: int | None = None
    resources: dict = field(default_factory=dict)  # jobManagerResource, taskManagerResource
    session: str = ""  # the FlinkDeployment session cluster of a FlinkSession on Kubernetes
    image: str = ""  # a FlinkDeployment's image (Kubernetes)
    detach: bool = False

    @property
    def python(self) -> bool:
        return self.resource.endswith(".py")

    def command(self, resource: str | None = None) -> list[str]:
        """The `flink run` arguments (the resource as given, or as the cluster reaches it)."""
        argv = ["flink", "run"]
        if self.parallelism:
            argv += ["-p", str(self.parallelism)]
        path = self.resource if resource is None else resource
        if self.python:
            argv += ["-py", path]
        else:
            argv += (["-c", self.entry_class] if self.entry_class else []) + [path]
        return argv + list(self.args)


def action_params(params: dict, where: str = "flink") -> FlinkAction:
    """The action's params with `bigDataConf` (a JSON string) read in; ExecutorError naming the bad one."""
    merged: dict = {}
    raw = params.get("bigDataConf")
    if raw not in (None, ""):
        try:
            conf = json.loads(raw) if isinstance(raw, str) else raw
        except ValueError as exc:
            raise ExecutorError(f"{where}: bigDataConf is not JSON: {exc}")
        if not isinstance(conf, dict):
            raise ExecutorError(f"{where}: bigDataConf must be a JSON object")
        merged.update(conf)
    merged.update({k: v for k, v in params.items() if k != "bigDataConf" and v not in (None, "")})
    resource = str(merged.get("resource") or "").strip()
    if not resource:
        raise ExecutorError(f"{where} needs the param resource: the job's jar or .py program "
                            "(e.g. ${{ dirs.build }}/job.jar)")
    if not resource.endswith((".jar", ".py")):
        raise ExecutorError(f"{where}: resource {resource!r} is neither a .jar nor a .py program")
    args = merged.get("args") or []
    if isinstance(args, str):
        try:
            args = shlex.split(args)
        except ValueError as exc:
            raise ExecutorError(f"{where}: args: {exc}")
    if not isinstance(args, list):
        raise ExecutorError(f"{where}: args is a list of strings")
    conf = merged.get("flinkConf") or {}
    if not isinstance(conf, dict):
        raise ExecutorError(f"{where}: flinkConf is a mapping (kind, parallelism, jobManagerResource, "
                            "taskManagerResource)")
    kind = str(conf.get("kind") or "FlinkSession")
    if kind not in KINDS:
        raise ExecutorError(f"{where}: flinkConf.kind is FlinkJob or FlinkSession, not {kind!r}")
    parallelism = conf.get("parallelism")
    if parallelism not in (None, ""):
        if not str(parallelism).isdigit() or not 1 <= int(parallelism) <= 1024:
            raise ExecutorError(f"{where}: flinkConf.parallelism must be a whole number 1-1024, not {parallelism!r}")
        parallelism = int(parallelism)
    python = resource.endswith(".py")
    if python and merged.get("class"):
        raise ExecutorError(f"{where}: class names a jar's entry class; a Python program has none")
    return FlinkAction(resource=resource, entry_class=str(merged.get("class") or ""), args=tuple(str(a) for a in args),
                       kind=kind, parallelism=parallelism or None,
                       resources={k: conf[k] for k in ("jobManagerResource", "taskManagerResource") if conf.get(k)},
                       session=str(conf.get("session") or ""), image=str(merged.get("image") or ""),
                       detach=str(merged.get("detach", "")).lower() in ("true", "1", "yes"))
