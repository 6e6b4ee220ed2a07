"""A run's parsed pipeline and its reference context: what `${{ params.x }}`, `${{ configs.k }}`,
`${{ outputs.a.k }}` and `${{ dirs.a }}` resolve to, and the secrets to mask."""

from __future__ import annotations

import hashlib
import os

from django.db import connection

from apps.pipelines import expressions, secrets
from apps.pipelines.models import PipelineRun, ProjectConfig, TaskRun
from apps.pipelines.paths import dirs_root
from pipelineyml import PipelineYml, parse_pipeline_yml

# ---- the parsed pipeline and the reference context -------------------------------------------

_PARSED: dict[str, PipelineYml] = {}


def pipeline_of(run: PipelineRun) -> PipelineYml:
    """The run's pipeline, parsed once per process (keyed by the text's hash)."""
    key = hashlib.sha256(run.source.encode()).hexdigest()
    found = _PARSED.get(key)
    if found is None:
        if len(_PARSED) > 64:
            _PARSED.clear()
        found = _PARSED[key] = parse_pipeline_yml(run.source, source=run.name or "pipeline.yml")
    return found


def project_configs(project_id: int) -> tuple[dict[str, str], secrets.Masker]:
    meta, quote = ProjectConfig._meta, connection.ops.quote_name
    columns = ", ".join(quote(meta.get_field(name).column) for name in ("key", "value", "secret"))
    with connection.cursor() as cursor:  # as SQL: read at every step's start and end
        cursor.execute(f"SELECT {columns} FROM {quote(meta.db_table)} "
                       f"WHERE {quote(meta.get_field('project').column)} = %s ORDER BY {quote(meta.get_field('key').column)}",
                       [project_id])
        rows = cursor.fetchall()
    values, hidden = {}, []
    for key, value, secret in rows:
        plain = ProjectConfig(key=key, value=value, secret=bool(secret)).plain_value()
        values[key] = plain
        if secret:
            hidden.append(plain)
    return values, secrets.Masker(hidden)


def referenced(pipeline: PipelineYml, aliases, kind: str) -> set[str]:
    """The actions whose `kind` (outputs, dirs) the given actions refer to."""
    return {ref.target for alias in aliases for ref in pipeline.action(alias).references if ref.kind == kind}


def context_for(run: PipelineRun, pipeline: PipelineYml, for_aliases=None,
                configs: tuple[dict[str, str], secrets.Masker] | None = None) -> tuple[expressions.Context, secrets.Masker]:
    """The reference context of the run. With `for_aliases`, only the outputs those actions refer
    to are read (a step of a 1,000-task run need not decode 999 outputs it never uses; none read
    when they refer to none). `configs`: project_configs() as the caller just read them."""
    configs, masker = configs or project_configs(run.application.project_id)
    aliases = [a.alias for a in pipeline.actions]
    finished = TaskRun.objects.filter(run_id=run.pk, status="success")
    wanted = None if for_aliases is None else referenced(pipeline, for_aliases, "outputs")
    if wanted is not None:
        finished = finished.filter(alias__in=wanted)
    outputs = {} if wanted == set() else {
        alias: outputs or {} for alias, outputs in finished.values_list("alias", "outputs")}
    payload = run.trigger_payload or {}
    dirs = str(dirs_root(run.pk))
    ctx = expressions.Context(
        params=dict(run.params or {}),
        configs=configs,
        outputs=outputs,
        dirs={alias: os.path.join(dirs, alias) for alias in aliases},  # action_dir, as text
        triggers={payload["event"]: payload} if payload.get("event") else {},
        aliases=set(aliases),
    )
    return ctx, masker
