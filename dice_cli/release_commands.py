"""`dice release ...`: make, list and show an application's releases over the API."""

from __future__ import annotations

from dice_cli.api_commands import find_application
from dice_cli.client import Client, post_spec
from dice_cli.errors import CliError
from dice_cli.folders import spec_folder_archive
from dice_cli.inputs import read_spec_file
from dice_cli.output import add_format_option, emit

LIST_COLUMNS = ["id", "version", "description", "hash", "created_by", "created"]


def parse_images(values: list[str]) -> dict[str, str]:
    """--image svc=ref (repeatable) -> map; malformed or repeated is a usage error (exit 2)."""
    images: dict[str, str] = {}
    for value in values or []:
        name, sep, ref = value.partition("=")
        name, ref = name.strip(), ref.strip()
        if not sep or not name or not ref:
            raise CliError(f"--image must be SERVICE=IMAGE, got {value!r}", 2)
        if name in images:
            raise CliError(f"--image {name}=... is given twice", 2)
        images[name] = ref
    return images


def _short(release: dict) -> dict:
    return {**release, "hash": (release.get("hash") or "")[:12], "version": f"v{release['version']}"}


def _post_release(client: Client, data: dict, filename: str, archive: bytes | None = None) -> dict | None:
    """POST /api/releases/ (multipart with the folder's archive); None when the server refused the
    spec (errors printed)."""
    return post_spec(client, "releases/", data, filename=filename, archive=archive)


def cmd_create(args):
    images = parse_images(args.image)
    raw = read_spec_file(args.spec)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise CliError(f"{args.spec}: not UTF-8 text")
    client = Client.from_login()
    app = find_application(client, args.app)
    source = "stdin" if args.spec == "-" else args.spec.replace("\\", "/").rsplit("/", 1)[-1]
    release = _post_release(client, {
        "application": app["id"], "spec_text": text, "images": images,
        "description": args.description, "source_name": source,
    }, args.spec, spec_folder_archive(args.spec, app, args.no_files))
    if release is None:
        return 1
    if args.format == "json":
        emit(release, "json")
    else:
        print(f"Created {release['application_name']} v{release['version']} (release {release['id']}, "
              f"hash {release['hash'][:12]})")
        _print_images(release)
    return 0


def cmd_list(args):
    client = Client.from_login()
    app = find_application(client, args.app)
    releases = client.list_all("releases/", application=app["id"])
    if args.format == "json":
        emit(releases, "json")
    else:
        emit([_short(r) for r in releases], "text", LIST_COLUMNS)


def cmd_show(args):
    if not str(args.id).isdigit():
        raise CliError(f"ID must be a release id (a number), got {args.id!r}", 2)
    release = Client.from_login().get(f"releases/{args.id}/")
    if args.format == "json":
        emit(release, "json")
        return
    print(f"{release['application_name']} v{release['version']}  (release {release['id']})")
    print(f"  made {release['created']} by {release['created_by'] or '-'}"
          + (f", pipeline run {release['pipeline_run_id']}" if release.get("pipeline_run_id") else ""))
    if release.get("description"):
        print(f"  {release['description']}")
    print(f"  hash {release['hash']}")
    summary = release.get("summary") or {}
    services = [
        {
            "service": s["name"], "image": s.get("image") or "-", "replicas": s["replicas"],
            "cpu": s["cpu"], "mem": s["mem"],
            "ports": ",".join(str(p["port"]) for p in s["ports"]) or "-",
            "depends_on": ",".join(s["depends_on"]) or "-",
        }
        for s in summary.get("services", [])
    ]
    if services:
        print()
        emit(services, "text", list(services[0]))
    if summary.get("addons"):
        print()
        emit([{"addon": a["name"], "type": a["type"], "size": a["size"]} for a in summary["addons"]], "text")
    if summary.get("jobs"):
        print()
        emit([{"job": j["name"], "image": j.get("image") or "-", "schedule": j.get("schedule") or "-"}
              for j in summary["jobs"]], "text")
    if summary.get("missing_images"):
        print(f"\nno image for: {', '.join(summary['missing_images'])}")


def _print_images(release: dict) -> None:
    for name, ref in sorted((release.get("images") or {}).items()):
        print(f"  {name}={ref}")
    missing = (release.get("summary") or {}).get("missing_images") or []
    if missing:
        print(f"  no image for: {', '.join(missing)}")


def register(subparsers) -> None:
    """Add the `release` command group."""
    release = subparsers.add_parser("release", help="application releases").add_subparsers(
        dest="action", metavar="ACTION"
    )
    release.required = True
    p = release.add_parser("create", help="make a new release of an application from a dice.yml")
    p.add_argument("app", metavar="ORG/PROJECT/APP")
    p.add_argument("--spec", required=True, metavar="FILE",
                   help="the dice.yml ('-' reads stdin); its folder's files go with it when the application "
                   "has no repository (the local cluster runs the services from them)")
    p.add_argument("--no-files", action="store_true", help="do not upload the spec's folder")
    p.add_argument("--image", action="append", default=[], metavar="SERVICE=IMAGE",
                   help="image of a service or job, over the spec's (repeatable)")
    p.add_argument("--description", default="")
    add_format_option(p)
    p.set_defaults(func=cmd_create)
    p = release.add_parser("list", help="list an application's releases, newest first")
    p.add_argument("app", metavar="ORG/PROJECT/APP")
    add_format_option(p)
    p.set_defaults(func=cmd_list)
    p = release.add_parser("show", help="show one release and what it runs")
    p.add_argument("id", metavar="ID")
    add_format_option(p)
    p.set_defaults(func=cmd_show)


