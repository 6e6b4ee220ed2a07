"""Release pages: create through the form (pasted or uploaded), the live check, the release page with
its dependency diagram, the comparison, and 404 for another organization on every page."""

from __future__ import annotations

import re
from pathlib import Path

from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from apps.deploy import services
from apps.deploy.models import Release
from tests.conftest import DATA

SAMPLE_PATH = DATA / "diceyml" / "blog.yml"

SPEC = """\
version: "2.0"
services:
  web:
    image: registry.example/shop/web:1.0
    ports: [8080]
    depends_on: [api]
  api:
    image: registry.example/shop/api:1.0
    depends_on: [cache]
  cache:
    image: redis:7
jobs:
  migrate:
    image: registry.example/shop/api:1.0
addons:
  db:
    plan: postgresql:professional
"""

BROKEN = """\
version: "2.0"
services:
  web:
    image: x
    ports: [99999]
"""


def _args(t):
    return [t.org.slug, t.project.slug, t.app.slug]


def _urls(t, version=1):
    a = _args(t)
    return {
        "list": reverse("deploy:releases", args=a),
        "new": reverse("deploy:release_add", args=a),
        "validate": reverse("deploy:release_validate", args=a),
        "detail": reverse("deploy:release", args=[*a, version]),
        "compare": reverse("deploy:release_compare", args=[*a, version]),
    }


def test_create_through_the_form(tenant_a):
    client = tenant_a.browser_client()
    urls = _urls(tenant_a)
    page = client.get(urls["new"]).content.decode()
    assert 'hx-trigger="keyup changed delay:400ms' in page and urls["validate"] in page
    response = client.post(urls["new"], {
        "spec_text": SPEC, "images": "api=registry.example/shop/api:2.0\n\n# comment\n", "description": "first",
    })
    assert response.status_code == 302, response.content.decode()[:2000]
    release = Release.objects.get()
    assert response["Location"] == release.get_absolute_url() == urls["detail"]
    assert release.images["api"] == "registry.example/shop/api:2.0" and release.description == "first"
    assert release.created_by == tenant_a.owner


def test_create_from_an_uploaded_file(tenant_a):
    client = tenant_a.browser_client()
    upload = SimpleUploadedFile("dice.yml", SAMPLE_PATH.read_bytes(), content_type="application/x-yaml")
    response = client.post(_urls(tenant_a)["new"], {"spec_file": upload, "spec_text": "", "images": ""})
    assert response.status_code == 302
    assert Release.objects.get().spec_text == SAMPLE_PATH.read_text()


def test_an_invalid_form_shows_the_error_lines_and_changes_nothing(tenant_a):
    client = tenant_a.browser_client()
    body = client.post(_urls(tenant_a)["new"], {"spec_text": BROKEN, "images": ""}).content.decode()
    assert "line 5:" in body and "services.web.ports.0" in body
    assert 'class="err-line" id="spec-line-5"' in body
    body = client.post(_urls(tenant_a)["new"], {"spec_text": SPEC, "images": "nope=x:1\nbad line"}).content.decode()
    assert "expected service=image" in body
    body = client.post(_urls(tenant_a)["new"], {"spec_text": SPEC, "images": "nope=x:1"}).content.decode()
    assert "&#x27;nope&#x27; is not a service or job" in body
    body = client.post(_urls(tenant_a)["new"], {"spec_text": "  ", "images": ""}).content.decode()
    assert "paste a dice.yml or upload one" in body
    assert not Release.objects.exists()


def test_live_validation_partial(tenant_a):
    client = tenant_a.browser_client()
    url = _urls(tenant_a)["validate"]
    bad = client.post(url, {"spec_text": BROKEN, "images": ""}, HTTP_HX_REQUEST="true")
    assert bad.status_code == 200
    html = bad.content.decode()
    assert "<html" not in html  # a fragment, swapped into the form
    assert re.search(r'<li data-line="5">line 5: <code>services\.web\.ports\.0', html)
    assert 'id="spec-line-5"' in html and '<span class="ln">5</span>' in html
    good = client.post(url, {"spec_text": SPEC, "images": "api=x:2"}, HTTP_HX_REQUEST="true").content.decode()
    assert "Valid: 3 services, 1 addon, 1 job" in good
    unknown = client.post(url, {"spec_text": SPEC, "images": "apx=x:2"}).content.decode()
    assert "did you mean &#x27;api&#x27;" in unknown
    assert not Release.objects.exists()


def test_release_page_shows_the_summary_and_the_diagram(tenant_a):
    services.create_release(tenant_a.owner, tenant_a.app, spec_text=SPEC, images={"api": "reg/api:9"})
    body = tenant_a.browser_client().get(_urls(tenant_a)["detail"]).content.decode()
    svg = body[body.index("<svg"): body.index("</svg>")]
    for name in ("web", "api", "cache"):
        assert f'<g class="service" data-name="{name}">' in svg
    assert '<g class="addon" data-name="db">' in svg
    assert 'data-from="web" data-to="api"' in svg and 'data-from="api" data-to="cache"' in svg
    assert "reg/api:9" in body and "postgresql" in body and "migrate" in body


def test_application_page_links_to_its_releases(tenant_a):
    services.create_release(tenant_a.owner, tenant_a.app, spec_text=SPEC, description="shiny")
    body = tenant_a.browser_client().get(tenant_a.app.get_absolute_url()).content.decode()
    assert _urls(tenant_a)["list"] in body and _urls(tenant_a)["detail"] in body and "shiny" in body
    listing = tenant_a.browser_client().get(_urls(tenant_a)["list"]).content.decode()
    assert "v1" in listing and "shiny" in listing


def test_compare_page(tenant_a):
    services.create_release(tenant_a.owner, tenant_a.app, spec_text=SPEC)
    services.create_release(tenant_a.owner, tenant_a.app, spec_text=SPEC.replace("redis:7", "redis:8"))
    client = tenant_a.browser_client()
    url = _urls(tenant_a, version=2)["compare"]
    body = client.get(url).content.decode()  # default: against v1, in DEV
    assert '<span class="del">-    image: redis:7</span>' in body
    assert '<span class="add">+    image: redis:8</span>' in body
    assert "services.cache.image" in body
    partial = client.get(url, {"other": "1", "workspace": "PROD"}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="diff")
    text = partial.content.decode()
    assert "<html" not in text and "PROD" in text and "redis:8" in text
    same = client.get(_urls(tenant_a, version=1)["compare"], {"other": "2", "workspace": "TEST"}).content.decode()
    assert '<span class="add">+    image: redis:7</span>' in same


def test_another_organization_gets_404_on_every_release_page(tenant_a, tenant_b):
    services.create_release(tenant_b.owner, tenant_b.app, spec_text=SPEC)
    client = tenant_a.browser_client()
    urls = _urls(tenant_b)
    for name, url in urls.items():
        assert client.get(url).status_code == (405 if name == "validate" else 404), name
        assert client.post(url, {"spec_text": SPEC, "images": ""}).status_code in (404, 405), name
    assert client.post(urls["new"], {"spec_text": SPEC}).status_code == 404
    assert client.post(urls["validate"], {"spec_text": SPEC}).status_code == 404
    assert Release.objects.count() == 1


def test_a_guest_sees_releases_but_cannot_make_one(tenant_a):
    services.create_release(tenant_a.owner, tenant_a.app, spec_text=SPEC)
    tenant_a.add_user("gus", "guest")
    from django.test import Client

    client = Client()
    client.login(username="gus", password="pw")
    urls = _urls(tenant_a)
    assert client.get(urls["detail"]).status_code == 200
    assert "New release" not in client.get(urls["list"]).content.decode()
    assert client.get(urls["new"]).status_code == 403
    assert client.post(urls["new"], {"spec_text": SPEC}).status_code == 403
    assert Release.objects.count() == 1


def test_the_form_takes_the_spec_folder_as_files_for_the_local_cluster(tenant_a, settings, tmp_path):
    """The browser path of the local runtime: dice.yml plus a tar.gz of its folder."""
    from apps.deploy import bundles
    from apps.deploy.models import ReleaseBundle
    from tests.conftest import ROOT

    settings.DICE_DEPLOY_FILES = tmp_path / "deploy"
    folder = ROOT / "examples" / "guestbook"
    client = tenant_a.browser_client()
    archive = SimpleUploadedFile("guestbook.tgz", bundles.make_archive(folder), content_type="application/gzip")
    response = client.post(_urls(tenant_a)["new"], {
        "spec_text": (folder / "dice.yml").read_text(), "images": "", "files": archive,
    })
    assert response.status_code == 302, response.content.decode()[:2000]
    bundle = ReleaseBundle.objects.get(release=Release.objects.get())
    assert bundle.files >= 3
    workdir = bundles.release_workdir(bundle.release)
    assert (Path(workdir) / "front.py").is_file() and (Path(workdir) / "api.py").is_file()


def test_a_bad_files_archive_is_refused_next_to_the_field(tenant_a):
    client = tenant_a.browser_client()
    junk = SimpleUploadedFile("app.tgz", b"not an archive", content_type="application/gzip")
    response = client.post(_urls(tenant_a)["new"], {"spec_text": SPEC, "images": "", "files": junk})
    assert response.status_code == 200
    assert "not a readable tar.gz archive" in response.content.decode()
    assert not Release.objects.exists()
