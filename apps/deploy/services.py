"""The one place that changes deploy state: releases are made here (views, API, CLI and pipelines)."""

from __future__ import annotations

import hashlib
import json

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Max

from apps.deploy import bundles
from apps.deploy.bundles import MAX_MEMBERS, MAX_UNPACKED  # noqa: F401  (the limits a caller packs to)
from apps.deploy.models import Release
from apps.projects import audit, scope
from apps.projects import permissions as perms
from apps.projects.models import Application
from diceyml import DiceYml, parse_dice_yml
from speckit.errors import SpecError, SpecInvalid
from speckit.suggest import did_you_mean

MAX_IMAGE_REF = 500
_VERSION_RETRIES = 5


class SpecRejected(ValidationError):
    """A ValidationError about the dice.yml text that also carries the parser's located errors."""

    def __init__(self, errors: list[SpecError]):
        self.spec_errors = list(errors)
        super().__init__({"spec_text": [str(e) for e in self.spec_errors]})


def _require(user, perm: str, obj) -> None:
    if not scope.has_perm(user, perm, obj):
        raise PermissionDenied(f"you may not {perm.replace('_', ' ')} application {obj}")


def _text(spec_text: str | bytes) -> str:
    if isinstance(spec_text, bytes):
        try:
            return spec_text.decode("utf-8")
        except UnicodeDecodeError:
            raise SpecRejected([SpecError("", None, "the file is not UTF-8 text")]) from None
    return spec_text


def parse_spec(spec_text: str | bytes, *, source_name: str = "dice.yml") -> tuple[DiceYml | None, list[SpecError]]:
    """The typed spec (None when invalid) and every error. Without a workspace the parser also
    checks each `environments.<env>` merged, so a release that parses here parses in every workspace."""
    try:
        return parse_dice_yml(spec_text, source=source_name), []
    except SpecInvalid as exc:
        return None, exc.errors


def workload_names(doc: DiceYml) -> list[str]:
    return [*doc.services, *doc.jobs]


def image_problems(doc: DiceYml, images: dict) -> list[str]:
    """What is wrong with an image map for this spec: unknown names, empty or malformed references."""
    names = workload_names(doc)
    out = []
    for key, ref in images.items():
        if key not in names:
            known = ", ".join(names) or "none"
            out.append(
                f"'{key}' is not a service or job of the spec{did_you_mean(key, names)} (it has: {known})"
            )
        elif not isinstance(ref, str) or not ref.strip() or any(c.isspace() for c in ref.strip()):
            out.append(f"{key}: the image must be a reference like registry/name:tag, got {ref!r}")
        elif len(ref) > MAX_IMAGE_REF:
            out.append(f"{key}: the image reference is longer than {MAX_IMAGE_REF} characters")
    return out


def resolve_images(doc: DiceYml, overrides: dict[str, str]) -> dict[str, str]:
    """Service or job -> image: the given map wins, else the spec's own `image`; names with neither
    are left out (the deployment refuses them)."""
    out = {}
    for name in workload_names(doc):
        workload = doc.services.get(name) or doc.jobs.get(name)
        image = overrides.get(name) or workload.image
        if image:
            out[name] = image
    return out


def content_hash(spec_text: str, images: dict[str, str]) -> str:
    """Identity of a release's content: the text and the resolved image map."""
    digest = hashlib.sha256(spec_text.encode("utf-8"))
    digest.update(b"\0")
    digest.update(json.dumps(images, sort_keys=True, separators=(",", ":")).encode("utf-8"))
    return digest.hexdigest()


def check_release_input(
    spec_text: str | bytes, images: dict | None, *, source_name: str = "dice.yml"
) -> tuple[DiceYml | None, list[SpecError], list[str]]:
    """(typed spec, spec errors, image map errors) without changing anything: the live form check."""
    try:
        text = _text(spec_text)
    except SpecRejected as exc:
        return None, exc.spec_errors, []
    doc, errors = parse_spec(text, source_name=source_name)
    if doc is None:
        return None, errors, []
    return doc, [], image_problems(doc, images or {})


@transaction.atomic
def create_release(
    user,
    application: Application,
    *,
    spec_text: str | bytes,
    images: dict | None = None,
    source_name: str = "dice.yml",
    pipeline_run_id: int | None = None,
    description: str = "",
    files: bytes | None = None,
) -> Release:
    """Make the application's next release. Always a new version, even for identical content:
    compare `content_hash` to tell. Refuses (ValidationError, nothing written) an invalid spec
    (errors as `line N: path: message`) or an image map naming something the spec does not have.
    `files`: the spec folder's tar.gz (apps.deploy.bundles checks it), kept with the release for
    the local cluster; a refused archive leaves no release behind."""
    _require(user, perms.CHANGE, application)
    text = _text(spec_text)
    images = dict(images or {})
    doc, spec_errors, image_errors = check_release_input(text, images, source_name=source_name)
    if spec_errors:
        raise SpecRejected(spec_errors)
    if image_errors:
        raise ValidationError({"images": image_errors})
    overrides = {k: v.strip() for k, v in images.items()}
    resolved = resolve_images(doc, overrides)
    release = Release(
        application=application,
        source_name=source_name[:200] or "dice.yml",
        spec_text=text,
        spec_hash=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        images=resolved,
        image_overrides=overrides,
        content_hash=content_hash(text, resolved),
        description=description,
        created_by=user if user is not None and user.is_authenticated else None,
        created_by_name=getattr(user, "username", "") or "system",
        pipeline_run_id=pipeline_run_id,
    )
    release.full_clean(exclude=["version", "application"], validate_unique=False, validate_constraints=False)
    _save_next_version(release)
    audit.record(user, "create", release, after={
        "id": release.pk,
        "application": application.pk,
        "version": release.version,
        "content_hash": release.content_hash,
        "images": release.images,
        "description": release.description,
        "pipeline_run_id": release.pipeline_run_id,
    })
    if files is not None:
        bundles.attach_bundle(release, files)
    return release


def _save_next_version(release: Release) -> None:
    """Number the release max+1 under a lock on the application row (PostgreSQL); where the lock is
    a no-op (SQLite serialises writers instead) a lost race hits the unique constraint and retries."""
    for attempt in range(_VERSION_RETRIES):
        try:
            with transaction.atomic():
                list(Application.objects.select_for_update().filter(pk=release.application_id).values_list("pk"))
                last = Release.objects.filter(application_id=release.application_id).aggregate(v=Max("version"))["v"]
                release.version = (last or 0) + 1
                release._state.adding = True
                release.pk = None
                release.save()
            return
        except IntegrityError:
            if attempt == _VERSION_RETRIES - 1:
                raise


def runtime_log_masker(runtime):
    """The masker of what a runtime's logs must not show, whatever cluster it runs on: its
    application's secret variables in its workspace and the project configs its release's
    `((KEY))` placeholders name (agent/masking.py: the values and their common encodings). The
    local cluster's shims already mask them as lines are written; a Kubernetes pod's lines are
    masked here as they are read."""
    from agent.masking import Masker
    from apps.deploy import variables
    from apps.pipelines.models import ProjectConfig
    from diceyml.placeholders import secret_keys

    _, secret, _ = variables.for_runtime(runtime)
    values = list(secret.values())
    if runtime.release_id is not None:
        try:
            doc = parse_dice_yml(runtime.release.spec_text, source=runtime.release.source_name,
                                 workspace=runtime.workspace.kind)
        except SpecInvalid:
            doc = None
        if doc is not None:
            values += ProjectConfig.values_of(runtime.application.project_id, secret_keys(doc)).values()
    return Masker(values)


def masked_lines(lines, masker):
    """LogLines with their text masked (per source and stream, so a value split across two lines
    of one replica is masked too)."""
    import dataclasses

    for line in lines:
        yield dataclasses.replace(line, text=masker.line(line.text, f"{line.source}\0{line.stream}"))
