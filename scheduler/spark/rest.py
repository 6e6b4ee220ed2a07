"""A standalone Spark master as seen over HTTP: the REST submission protocol (create, status, kill
of a driver, `spark.master.rest.enabled`) and the web UI's JSON (workers, cores, memory, apps),
plus a worker's driver log (its web UI's /log/)."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from scheduler.base import ExecutorError, ExecutorUnavailable

TIMEOUT = 10.0


@dataclass(frozen=True)
class Master:
    """Where a standalone master answers: `rest` (http://host:6066, the submission protocol),
    `ui` (http://host:8080, its JSON) and `url` (spark://host:7077, what drivers connect to)."""

    rest: str
    ui: str
    url: str

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Master:
        """From a cluster's config: `endpoint` (the REST URL, required), `ui` and `master` (default:
        the endpoint's host on ports 8080 and 7077)."""
        endpoint = str(config.get("endpoint") or "")
        parsed = urllib.parse.urlsplit(endpoint)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ExecutorUnavailable(f"a Spark cluster is registered by its master's REST URL "
                                      f"(http://host:6066), not {endpoint!r}")
        # Where the master or its UI are not on the default ports, the URL says so in its query:
        # http://host:6066?master=spark://host:7177&ui=http://host:8180
        query = dict(urllib.parse.parse_qsl(parsed.query))
        host = parsed.hostname
        rest = urllib.parse.urlunsplit((parsed.scheme, parsed.netloc, parsed.path.rstrip("/"), "", ""))
        ui = str(config.get("ui") or query.get("ui") or f"{parsed.scheme}://{host}:8080").rstrip("/")
        url = str(config.get("master") or query.get("master") or f"spark://{host}:7077")
        if not url.startswith("spark://") or not ui.startswith(("http://", "https://")):
            raise ExecutorUnavailable(f"{endpoint!r}: master= is a spark:// URL and ui= an http(s) URL")
        return cls(rest=rest, ui=ui, url=url)

    @property
    def endpoint(self) -> str:
        """The one URL that registers this master (rest, with master and UI when not the defaults)."""
        return f"{self.rest}?{urllib.parse.urlencode({'master': self.url, 'ui': self.ui})}"


def _call(method: str, url: str, body: dict | None = None, timeout: float = TIMEOUT) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json;charset=UTF-8"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:  # the protocol answers errors with a JSON body
        try:
            return json.loads(exc.read() or b"{}")
        except ValueError:
            raise ExecutorError(f"{method} {url}: HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise ExecutorUnavailable(f"the Spark master at {url} cannot be reached: "
                                  f"{getattr(exc, 'reason', exc)}") from None
    except ValueError:
        raise ExecutorError(f"{method} {url}: the answer is not JSON (is this a Spark master?)") from None


def status(master: Master, submission: str) -> dict:
    return _call("GET", f"{master.rest}/v1/submissions/status/{urllib.parse.quote(submission, safe='')}")


def kill(master: Master, submission: str) -> dict:
    return _call("POST", f"{master.rest}/v1/submissions/kill/{urllib.parse.quote(submission, safe='')}", {})


def create(master: Master, *, resource: str, main_class: str, args: list[str], properties: dict[str, str],
           envs: dict[str, str], version: str) -> str:
    """Submit a driver in cluster mode; its submission id (driver-...)."""
    body = {"action": "CreateSubmissionRequest", "appResource": resource, "mainClass": main_class,
            "appArgs": list(args), "clientSparkVersion": version or "4.0.1",
            "environmentVariables": dict(envs),
            "sparkProperties": {**properties, "spark.master": master.url, "spark.submit.deployMode": "cluster",
                                "spark.jars": properties.get("spark.jars") or resource}}
    answer = _call("POST", f"{master.rest}/v1/submissions/create", body)
    if not answer.get("success") or not answer.get("submissionId"):
        raise ExecutorError(f"the Spark master refused the submission: {answer.get('message') or answer}")
    return str(answer["submissionId"])


def version(master: Master) -> str:
    """The master's Spark version: a status request for no driver answers with it."""
    return str(status(master, "dice-version-probe").get("serverSparkVersion") or "")


def master_json(master: Master, timeout: float = TIMEOUT) -> dict:
    return _call("GET", f"{master.ui}/json/", timeout=timeout)


def driver_log(worker_ui: str, driver: str, stream: str, offset: int) -> tuple[str, int]:
    """Bytes of a cluster-mode driver's stdout or stderr from `offset` on its worker: (text, the
    offset after it)."""
    query = urllib.parse.urlencode({"driverId": driver, "logType": stream, "offset": offset,
                                    "byteLength": 1 << 20})
    try:
        with urllib.request.urlopen(f"{worker_ui.rstrip('/')}/log/?{query}", timeout=TIMEOUT) as response:
            text = response.read().decode("utf-8", "replace")
    except (urllib.error.URLError, OSError):
        return "", offset
    header, _, body = text.partition("\n")
    # "==== Bytes 0-36 of 36 of /path/stdout ====": what was read, and where the next read starts
    try:
        end = int(header.split("Bytes ", 1)[1].split(" ", 1)[0].split("-")[1])
    except (IndexError, ValueError):
        return "", offset
    return body, end
