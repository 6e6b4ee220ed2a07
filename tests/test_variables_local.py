"""The console's environment variables reach a service on the local cluster on the next deploy:
a service that prints its variables and serves them shows the console's value over the file's,
the secret one (which the API never shows back), and after a change and a new deploy the new
value; a runtime whose variables changed since its deploy reads out of sync until then."""

from __future__ import annotations

import json
import textwrap

from apps.deploy.bundles import make_archive
from tests.polling import wait_for
from tests.test_runtime_local import _deploy, _service, get, local_cluster, shop  # noqa: F401 (fixtures)

SPEC = """\
version: "2.0"
envs: {GREETING: from-file, OTHER: file-only}
services:
  echo:
    cmd: python3 echo.py
    ports:
      - port: 8080
        expose: true
    resources: {cpu: 0.1, mem: 64}
"""
ECHO = textwrap.dedent("""\
    import http.server, json, os
    NAMES = ("GREETING", "OTHER", "API_KEY", "DICE_WORKSPACE")
    print("variables:", " ".join(f"{n}={os.environ.get(n, '')}" for n in NAMES if n != "API_KEY"), flush=True)
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps({n: os.environ.get(n) for n in NAMES}).encode()
            self.send_response(200); self.end_headers(); self.wfile.write(body)
        def log_message(self, *a):
            pass
    http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
""")


def test_a_deployed_service_sees_the_workspaces_variables(local_cluster, shop, tmp_path):  # noqa: F811
    from apps.deploy import variables
    from apps.deploy.models import Runtime
    from apps.deploy.refs import runtime_ref

    api, app, user = shop["api"], shop["app"], shop["user"]
    (tmp_path / "echo").mkdir()
    (tmp_path / "echo" / "echo.py").write_text(ECHO)
    files = make_archive(tmp_path / "echo")
    r = api.post("/api/variables/", {"application": app.pk, "workspace": "DEV", "name": "GREETING",
                                     "value": "from-console"}, format="json")
    assert r.status_code == 201
    r = api.post("/api/variables/", {"application": app.pk, "workspace": "DEV", "name": "API_KEY",
                                     "value": "k3y-one", "secret": True}, format="json")
    assert r.status_code == 201 and r.json()["value"] == "******"
    variables.set_variable(user, app, "PROD", name="GREETING", value="not-dev")

    first = _deploy(api, app, SPEC, files)
    assert first["status"] == "healthy", first
    runtime = api.get(f"/api/runtimes/{first['runtime']}/").json()
    url = _service(runtime, "echo")["url"]
    seen = json.loads(get(url + "/"))
    assert seen == {"GREETING": "from-console", "OTHER": "file-only", "API_KEY": "k3y-one", "DICE_WORKSPACE": "DEV"}
    # The service printed them (its log, as the runtime page and `dice logs` read it).
    executor = local_cluster
    ref = runtime_ref(Runtime.objects.get(pk=first["runtime"]))
    wait_for(lambda: any("GREETING=from-console" in line.text for line in executor.logs(ref, "echo")), 10,
             "the service's printed variables")

    # A change is taken on the next deploy; until then the runtime is out of sync.
    variables.set_variable(user, app, "DEV", name="API_KEY", value="k3y-two", secret=True)
    drift = api.get(f"/api/runtimes/{first['runtime']}/drift/").json()
    assert drift["sync"] == "out of sync", drift
    assert {(i["object"], i["field"]) for i in drift["items"]} == {("service echo", "variables.API_KEY")}
    assert "k3y" not in json.dumps(drift)
    assert json.loads(get(url + "/"))["API_KEY"] == "k3y-one"
    second = _deploy(api, app, SPEC, files)
    assert second["status"] == "healthy", second
    runtime = api.get(f"/api/runtimes/{second['runtime']}/").json()
    seen = json.loads(get(_service(runtime, "echo")["url"] + "/"))
    assert seen["API_KEY"] == "k3y-two" and seen["GREETING"] == "from-console"
    assert api.get(f"/api/runtimes/{second['runtime']}/drift/").json()["sync"] == "in sync"
