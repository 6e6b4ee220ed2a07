"""An image built from a Dockerfile's non-RUN subset: the base image's layers (from the registry)
plus one layer per COPY/ADD, written as deterministic tar.gz layers (owner root, mtime 0), with an
OCI config and manifest, pushed to the registry. The build context is read through `read_file`,
which the caller makes safe (no link out of the context)."""

from __future__ import annotations

import fnmatch
import gzip
import hashlib
import io
import json
import posixpath
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field

from apps.pipelines.images import dockerfile
from apps.pipelines.images.dockerfile import DockerfileError
from apps.pipelines.images.registry import OCI_MANIFEST, Registry

LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
CONFIG = "application/vnd.oci.image.config.v1+json"
MAX_CONTEXT_BYTES = 512 * 1024 * 1024


@dataclass
class Built:
    name: str
    tag: str
    digest: str
    layers: int
    config: dict = field(default_factory=dict)

    def reference(self, host: str) -> str:
        return f"{host}/{self.name}:{self.tag}"


# A base's layer keeps its compression: an uncompressed layer called gzip is one no runtime can
# unpack. Docker's names become the OCI ones for the same bytes (our manifest is an OCI one).
LAYER_TYPES = {
    "application/vnd.oci.image.layer.v1.tar": "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip": LAYER,
    "application/vnd.oci.image.layer.v1.tar+zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.diff.tar": "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.docker.image.rootfs.diff.tar.gzip": LAYER,
}


def layer_media_type(given: str) -> str:
    """The OCI media type of a base image's layer (what its bytes are), refusing one we cannot name."""
    if given not in LAYER_TYPES:
        raise DockerfileError(f"the base image has a layer of type {given or '(none)'}, which this builder "
                              "does not copy (a foreign or non-distributable layer)")
    return LAYER_TYPES[given]


def split_ref(ref: str) -> tuple[str, str]:
    """`name[:tag]` (a registry host prefix is dropped: bases come from the configured registry)."""
    name, _, tag = ref.rpartition(":") if ":" in ref.rsplit("/", 1)[-1] else (ref, "", "latest")
    first = name.split("/", 1)
    if len(first) == 2 and ("." in first[0] or ":" in first[0] or first[0] == "localhost"):
        name = first[1]
    if "/" not in name:
        name = f"library/{name}"
    return name, tag or "latest"


def _layer(files: list[tuple[str, bytes, int]]) -> tuple[bytes, str]:
    """(gzip of the tar, diff id) of files (path in the image, content, mode), deterministic."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs: set[str] = set()
        for path, content, mode in sorted(files):
            parent = posixpath.dirname(path)
            chain = []
            while parent and parent not in dirs:
                chain.append(parent)
                parent = posixpath.dirname(parent)
            for d in reversed(chain):
                info = tarfile.TarInfo(d)
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
                dirs.add(d)
            info = tarfile.TarInfo(path)
            info.size, info.mode = len(content), mode
            tar.addfile(info, io.BytesIO(content))
    data = raw.getvalue()
    return gzip.compress(data, mtime=0), "sha256:" + hashlib.sha256(data).hexdigest()


def build(text: str, context_files: list[str], read_file: Callable[[str], tuple[bytes, int]], registry: Registry,
          name: str, tag: str, build_args: dict[str, str] | None = None) -> Built:
    """Build the Dockerfile `text` with the context (relative paths, read through `read_file`) and
    push the image as `name:tag`."""
    steps = dockerfile.parse(text)
    args = dict(build_args or {})
    env: dict[str, str] = {}
    config: dict = {"Env": [], "WorkingDir": "/", "ExposedPorts": {}, "Labels": {}}
    layers: list[dict] = []
    diff_ids: list[str] = []
    history: list[dict] = []
    total = 0
    for step in steps:
        line = step.line
        text_args = dockerfile.expand(step.args, {**args, **env})
        if step.op == "ARG":
            key, _, default = text_args.partition("=")
            args.setdefault(key.strip(), default)
        elif step.op == "FROM":
            base = text_args.split()[0]
            if len(text_args.split()) > 1 and text_args.split()[1].upper() != "AS":
                raise DockerfileError(f"line {line}: FROM IMAGE [AS NAME]")
            if base != "scratch":
                base_name, base_tag = split_ref(base)
                manifest, _ = registry.manifest(base_name, base_tag)
                if "layers" not in manifest:
                    raise DockerfileError(f"line {line}: {base} is an image index; name one platform's image")
                base_config = json.loads(registry.blob(base_name, manifest["config"]["digest"]))
                config.update({k: v for k, v in (base_config.get("config") or {}).items() if v is not None})
                config.setdefault("ExposedPorts", {})
                config.setdefault("Labels", {})
                for entry in config.get("Env") or []:
                    key, _, value = entry.partition("=")
                    env[key] = value
                for layer in manifest["layers"]:
                    registry.copy_blob(base_name, name, layer["digest"])
                    layers.append({"mediaType": layer_media_type(layer.get("mediaType", "")),
                                   "digest": layer["digest"], "size": layer["size"]})
                diff_ids += base_config.get("rootfs", {}).get("diff_ids", [])
                history += base_config.get("history", [])
        elif step.op in ("COPY", "ADD"):
            parts = [p for p in dockerfile.words(text_args, line) if not p.startswith("--")]
            if len(parts) < 2:
                raise DockerfileError(f"line {line}: {step.op} SOURCE... DEST")
            *sources, dest = parts
            if any("://" in s for s in sources):
                raise DockerfileError(f"line {line}: ADD of a URL is not supported: give the file in the context")
            workdir = config.get("WorkingDir") or "/"
            dest_abs = posixpath.normpath(posixpath.join(workdir, dest))
            as_dir = dest.endswith("/") or len(sources) > 1 or any(ch in "".join(sources) for ch in "*?[")
            files: list[tuple[str, bytes, int]] = []
            for source in sources:
                pattern = posixpath.normpath(source).lstrip("/")
                if pattern.startswith(".."):
                    raise DockerfileError(f"line {line}: {source} is outside the build context")
                whole = pattern in (".", "")
                folder = pattern.rstrip("/") + "/"
                matched = [f for f in context_files if whole or f.startswith(folder) or fnmatch.fnmatchcase(f, pattern)]
                if not matched:
                    raise DockerfileError(f"line {line}: {source} matches no file of the build context")
                for rel in matched:
                    content, mode = read_file(rel)
                    total += len(content)
                    if total > MAX_CONTEXT_BYTES:
                        raise DockerfileError(f"the files copied are over {MAX_CONTEXT_BYTES // 2**20} MiB")
                    if whole:
                        target = posixpath.join(dest_abs, rel)
                    elif rel.startswith(folder):  # a directory: its contents go under DEST
                        target = posixpath.join(dest_abs, rel[len(folder):])
                    else:
                        target = posixpath.join(dest_abs, posixpath.basename(rel)) if as_dir else dest_abs
                    files.append((target.lstrip("/"), content, 0o755 if mode & 0o111 else 0o644))
            blob, diff_id = _layer(files)
            layers.append({"mediaType": LAYER, "digest": registry.push_blob(name, blob), "size": len(blob)})
            diff_ids.append(diff_id)
            history.append({"created_by": f"{step.op} {step.args}"})
        elif step.op == "ENV":
            for key, value in dockerfile.pairs(text_args, line).items():
                env[key] = value
        elif step.op == "LABEL":
            config["Labels"].update(dockerfile.pairs(text_args, line))
        elif step.op == "WORKDIR":
            config["WorkingDir"] = posixpath.normpath(posixpath.join(config.get("WorkingDir") or "/", text_args))
        elif step.op == "EXPOSE":
            for port in text_args.split():
                config["ExposedPorts"][port if "/" in port else f"{port}/tcp"] = {}
        elif step.op == "USER":
            config["User"] = text_args
        elif step.op == "CMD":
            config["Cmd"] = dockerfile.command(step.args, line)
        elif step.op == "ENTRYPOINT":
            config["Entrypoint"] = dockerfile.command(step.args, line)
            config.pop("Cmd", None)  # as Docker does: the base's CMD goes; a later CMD sets it again
    config["Env"] = [f"{k}={v}" for k, v in env.items()]
    image_config = {"architecture": "amd64", "os": "linux", "config": config,
                    "rootfs": {"type": "layers", "diff_ids": diff_ids}, "history": history}
    config_blob = json.dumps(image_config, separators=(",", ":"), sort_keys=True).encode()
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": CONFIG, "digest": registry.push_blob(name, config_blob),
                           "size": len(config_blob)},
                "layers": layers}
    digest = registry.push_manifest(name, tag, manifest)
    return Built(name=name, tag=tag, digest=digest, layers=len(layers), config=image_config)
