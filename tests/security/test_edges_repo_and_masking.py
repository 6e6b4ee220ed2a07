"""Issue 17, items 8 and 14, attempted as a tenant would.

8: an application's repo_url is cloned by the console itself: only https, ssh and git URLs of
public hosts are accepted (through the API, the page and the CLI), checked again and pinned
right before the clone; file://, plain paths and loopback, link-local and private addresses
are refused naming the setting that would allow them, and nothing changes.
14: a secret project config printed by a step in base64, hex, URL-encoded, reversed or split
across two lines never reaches the stored log."""

from __future__ import annotations

import base64
import os
import subprocess
from urllib.parse import quote

import pytest

from agent.masking import MASK, Masker, forms
from apps.projects import repourls
from tests.pipelines_helpers import engine, retry_locked  # noqa: F401

# ---- 8: repo_url ---------------------------------------------------------------------------

REFUSED = [
    ("file:///etc", "DICE_REPO_ALLOW_LOCAL_PATHS"),
    ("/srv/other-org/repo.git", "DICE_REPO_ALLOW_LOCAL_PATHS"),
    ("../other/repo", "DICE_REPO_ALLOW_LOCAL_PATHS"),
    ("x", "DICE_REPO_ALLOW_LOCAL_PATHS"),
    ("https://127.0.0.1/a.git", "DICE_REPO_ALLOW_PRIVATE_HOSTS"),
    ("https://localhost/a.git", "DICE_REPO_ALLOW_PRIVATE_HOSTS"),
    ("ssh://git@10.1.2.3/a.git", "DICE_REPO_ALLOW_PRIVATE_HOSTS"),
    ("git@192.168.1.10:team/a.git", "DICE_REPO_ALLOW_PRIVATE_HOSTS"),
    ("git://[::1]/a.git", "DICE_REPO_ALLOW_PRIVATE_HOSTS"),
    ("https://169.254.169.254/latest/meta-data", "DICE_REPO_ALLOW_PRIVATE_HOSTS"),
    ("https://[::ffff:127.0.0.1]/a.git", "DICE_REPO_ALLOW_PRIVATE_HOSTS"),
    ("https://2130706433/a.git", "DICE_REPO_ALLOW_PRIVATE_HOSTS"),  # 127.0.0.1 as one number: resolved
    ("https://0x7f.1/a.git", "DICE_REPO_ALLOW_PRIVATE_HOSTS"),
    ("https://git.localhost/a.git", "DICE_REPO_ALLOW_PRIVATE_HOSTS"),
    ("http://git.example/a.git", "https"),
    ("ext::sh -c touch% /tmp/pwned", "not a repository URL"),
    ("-uhttps://git.example/a.git", "not a repository URL"),
    ("ftp://git.example/a.git", "https://, ssh:// or git://"),
]
ACCEPTED = [
    "https://git.example/team/web.git",
    "https://user@git.example:8443/team/web.git",
    "ssh://git@git.example:2222/team/web.git",
    "git@git.example:team/web.git",
    "git://git.example/team/web.git",
    "https://93.184.215.14/team/web.git",
]


@pytest.mark.django_db
@pytest.mark.parametrize(("url", "named"), REFUSED)
def test_api_refuses_a_repo_url_naming_why_and_changes_nothing(tenant_a, url, named):
    from apps.projects.models import Application

    api = tenant_a.api()
    before = Application.objects.count()
    r = api.post("/api/applications/", {"project": tenant_a.project.pk, "slug": "evil", "repo_url": url}, format="json")
    assert r.status_code == 400, r.content
    assert named in r.json()["repo_url"][0]
    assert Application.objects.count() == before
    r = api.patch(f"/api/applications/{tenant_a.app.pk}/", {"repo_url": url}, format="json")
    assert r.status_code == 400 and named in r.json()["repo_url"][0]
    tenant_a.app.refresh_from_db()
    assert tenant_a.app.repo_url == "https://git.example/a"


@pytest.mark.django_db
@pytest.mark.parametrize("url", ACCEPTED)
def test_api_accepts_public_https_ssh_and_git_urls(tenant_a, url):
    r = tenant_a.api().patch(f"/api/applications/{tenant_a.app.pk}/", {"repo_url": url}, format="json")
    assert r.status_code == 200, r.content
    assert r.json()["repo_url"] == url


@pytest.mark.django_db
def test_settings_allow_private_hosts_and_local_paths(tenant_a, settings):
    api = tenant_a.api()
    url = f"/api/applications/{tenant_a.app.pk}/"
    settings.DICE_REPO_ALLOW_PRIVATE_HOSTS = True
    assert api.patch(url, {"repo_url": "https://10.0.0.8/team/web.git"}, format="json").status_code == 200
    assert api.patch(url, {"repo_url": "file:///srv/git/web.git"}, format="json").status_code == 400
    settings.DICE_REPO_ALLOW_LOCAL_PATHS = True
    assert api.patch(url, {"repo_url": "file:///srv/git/web.git"}, format="json").status_code == 200


@pytest.mark.django_db
def test_page_form_shows_the_refusal(tenant_a):
    from django.urls import reverse

    client = tenant_a.browser_client()
    r = client.post(reverse("projects:application_add", args=[tenant_a.org.slug, tenant_a.project.slug]),
                    {"slug": "evil", "repo_url": "file:///etc"})
    assert r.status_code == 200
    assert "DICE_REPO_ALLOW_LOCAL_PATHS" in r.content.decode()
    assert not tenant_a.project.applications.filter(slug="evil").exists()


@pytest.mark.django_db(transaction=True)
def test_cli_app_create_refuses_a_local_path(dice_cli, tenant_a):
    cli = dice_cli(tenant_a.owner)
    code, _, err = cli("app", "create", f"{tenant_a.org.slug}/{tenant_a.project.slug}/evil", "--repo", "/etc")
    assert code == 1 and "DICE_REPO_ALLOW_LOCAL_PATHS" in err
    assert not tenant_a.project.applications.filter(slug="evil").exists()


def test_a_name_resolving_to_a_private_address_is_refused(monkeypatch):
    """DNS is injected (no server here answers with a private address on demand)."""
    monkeypatch.setattr(repourls, "resolve", lambda host, port: ["93.184.215.14", "10.9.8.7"])
    with pytest.raises(repourls.RepoUrlRefused, match=r"git.corp.example \(10.9.8.7\) is a private address"):
        repourls.check("https://git.corp.example/a.git", must_resolve=False, allow_private=False, allow_local=False)


def test_before_a_clone_the_host_must_resolve_and_the_clone_is_pinned(monkeypatch):
    with pytest.raises(repourls.RepoUrlRefused, match="cannot resolve"):
        repourls.check("https://git.example/a.git", must_resolve=True, allow_private=False, allow_local=False)
    monkeypatch.setattr(repourls, "resolve", lambda host, port: ["93.184.215.14"])
    target = repourls.check("https://git.example/a.git", must_resolve=True, allow_private=False, allow_local=False)
    argv, env = repourls.clone_command(target, "/tmp/x")
    config = [argv[i + 1] for i, arg in enumerate(argv) if arg == "-c"]
    assert "http.curloptResolve=git.example:443:93.184.215.14" in config  # no second DNS answer
    assert "http.followRedirects=false" in config  # no redirect to an internal address
    assert config[:2] == ["protocol.allow=never", "protocol.https.allow=always"] and env["GIT_ALLOW_PROTOCOL"] == "https"
    assert argv[-3:] == ["--", "https://git.example/a.git", "/tmp/x"]
    ssh = repourls.check("git@git.example:team/a.git", must_resolve=True, allow_private=False, allow_local=False)
    _, env = repourls.clone_command(ssh, "/tmp/x")
    assert "-o HostName=93.184.215.14 -o HostKeyAlias=git.example" in env["GIT_SSH_COMMAND"]
    plain = repourls.check("git://git.example/a.git", must_resolve=True, allow_private=False, allow_local=False)
    assert repourls.clone_command(plain, "/tmp/x")[0][-2] == "git://93.184.215.14:9418/a.git"


def test_the_clone_command_itself_refuses_other_transports(tmp_path):
    """Even a URL that slipped past the check cannot use another transport: git refuses it."""
    src = tmp_path / "src"
    subprocess.run(["git", "init", "-q", str(src)], check=True)
    target = repourls.RepoTarget(url=f"file://{src}", scheme="https", host="git.example", port=443)
    argv, env = repourls.clone_command(target, str(tmp_path / "out"))
    done = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, **env}, timeout=60)
    assert done.returncode != 0 and "transport 'file' not allowed" in done.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.django_db(transaction=True)
def test_a_stored_private_url_is_refused_at_clone_time(tenant_a, tmp_path, settings):
    """An application saved before the rule (or under a setting since turned off): the deploy's
    clone refuses it, and nothing is cloned."""
    from apps.deploy import bundles
    from apps.deploy.services import create_release

    settings.DICE_DEPLOY_FILES = tmp_path / "files"
    secret_dir = tmp_path / "other-org-repo"
    subprocess.run(["git", "init", "-q", str(secret_dir)], check=True)
    type(tenant_a.app).objects.filter(pk=tenant_a.app.pk).update(repo_url=f"file://{secret_dir}")
    tenant_a.app.refresh_from_db()
    release = retry_locked(create_release, tenant_a.owner, tenant_a.app,
                           spec_text='version: "2.0"\nservices:\n  web:\n    cmd: sleep 1\n')
    with pytest.raises(bundles.WorkdirError, match="DICE_REPO_ALLOW_LOCAL_PATHS"):
        bundles.release_workdir(release)
    cloned = list((tmp_path / "files").rglob(".git")) if (tmp_path / "files").exists() else []
    assert cloned == []


# ---- 14: masking ---------------------------------------------------------------------------

SECRET = "s3cr3t-Value/42+ok"


def leaks(text: str, secret: str = SECRET) -> list[str]:
    """The forms of the secret still readable in text."""
    raw = secret.encode()
    shown = {
        "exact": secret,
        "base64": base64.b64encode(raw).decode(),
        "base64url": base64.urlsafe_b64encode(raw).decode().rstrip("="),
        "hex": raw.hex(),
        "HEX": raw.hex().upper(),
        "url": quote(secret, safe=""),
        "reversed": secret[::-1],
        "first half": secret[: len(secret) // 2],
        "second half": secret[len(secret) // 2:],
    }
    return [name for name, form in shown.items() if form in text]


def test_every_common_form_is_masked():
    mask = Masker([SECRET])
    raw = SECRET.encode()
    for form in [SECRET, base64.b64encode(raw).decode(), base64.b64encode(raw).decode().rstrip("="),
                 base64.urlsafe_b64encode(raw).decode(), raw.hex(), raw.hex().upper(), quote(SECRET, safe=""),
                 quote(SECRET, safe="").replace("%2F", "%2f").replace("%2B", "%2b"), SECRET[::-1]]:
        line = mask(f"value: {form} end")
        assert line == f"value: {MASK} end", (form, line)


def test_base64_inside_a_longer_blob_is_masked_at_every_alignment():
    mask = Masker([SECRET])
    for prefix in ("", "u:", "ab:", "user:"):
        header = base64.b64encode(f"{prefix}{SECRET}".encode()).decode()
        masked = mask(f"Authorization: Basic {header}")
        middle = base64.b64encode(SECRET.encode()[3:15]).decode()  # a stretch of the secret's own bytes
        assert MASK in masked and middle not in masked, (prefix, masked)


def test_a_secret_split_across_two_lines_is_masked():
    mask = Masker([SECRET])
    first, second = mask.line(f"token part one: {SECRET[:7]}", "stdout"), mask.line(SECRET[7:] + " (rest)", "stdout")
    assert leaks(first + second) == [] and first.endswith(MASK) and second.startswith(MASK)
    # A short piece on one line still counts once the next line completes it.
    a, b = mask.line("x " + SECRET[:2], "stderr"), mask.line(SECRET[2:], "stderr")
    assert b == MASK and leaks(a + b) == []
    # Unrelated lines around it are untouched.
    assert mask.line("nothing here", "stdout") == "nothing here"


def test_short_secrets_mask_only_their_exact_text():
    assert forms("abc") == {"abc"}
    assert Masker(["abc"])("cba abc 616263") == f"cba {MASK} 616263"


@pytest.mark.django_db(transaction=True)
def test_a_step_printing_encoded_and_split_secrets_leaks_none_of_them(engine, tenant_a):  # noqa: F811
    from apps.logs.services import read_task_lines
    from apps.pipelines import services

    retry_locked(services.set_config, tenant_a.owner, tenant_a.project, key="token", value=SECRET, secret=True)
    src = """
version: "1.1"
stages:
  - stage:
      - custom-script:
          alias: leak
          commands:
            - 'T="${{ configs.token }}"'
            - 'printf "%s" "$T" | base64'
            - 'printf "%s" "$T" | od -An -tx1 | tr -d " \\n"; echo'
            - 'python3 -c "import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=\\"\\"))" "$T"'
            - 'printf "%s" "$T" | rev; echo'
            - 'printf "%s\\n%s\\n" "$(printf %s "$T" | cut -c1-9)" "$(printf %s "$T" | cut -c10-)"'
            - 'echo "Authorization: Basic $(printf "ci:%s" "$T" | base64)"'
            - echo done
"""
    run = engine.wait(engine.run(tenant_a, src))
    assert run.status == "success", run.reason
    task = run.tasks.get(alias="leak")
    texts = [line.text for line in read_task_lines(task.pk)]
    assert "done" in texts
    assert sum(MASK in text for text in texts) >= 7, texts
    assert leaks("\n".join(texts)) == [] and leaks("".join(texts)) == [], texts
