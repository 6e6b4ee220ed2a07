"""What a step runs, as one POSIX shell script: the action's commands, or the built-in
git-checkout. The same script runs on every cluster kind (the local agent runs it as a process,
on Kubernetes it is the step container's script), so the checkout is written once."""

from __future__ import annotations

__all__ = ["step_script"]


def q(text: object) -> str:
    """Single-quoted for /bin/sh."""
    return "'" + str(text).replace("'", "'\\''") + "'"


def _with_credentials(url: str, username: str | None, password: str | None) -> str:
    if not username:
        return url
    from urllib.parse import quote, urlsplit, urlunsplit  # a checkout's only: every step imports this module

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return url
    netloc = f"{quote(username, safe='')}:{quote(password or '', safe='')}@{parts.hostname}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def git_checkout_script(params: dict) -> str:
    """Clone `url`/`uri` into the working directory at `branch` or `commit`; the outputs commit,
    author, message and branch go to $METAFILE."""
    url = params.get("url") or params.get("uri")
    if not url:
        return "echo 'git-checkout needs the param `url` (or `uri`)' >&2\nexit 2\n"
    branch, commit, depth = params.get("branch"), params.get("commit"), params.get("depth")
    args = ["git", "-c", "advice.detachedHead=false", "clone", "--quiet"]
    if depth and not commit:
        args += ["--depth", str(int(depth))]
    if branch and not commit:
        args += ["--branch", str(branch)]
    remote = _with_credentials(str(url), params.get("username"), params.get("password"))
    lines = [
        "set -e",
        "export GIT_TERMINAL_PROMPT=0",
        "echo " + q(f"git clone {url}" + (f" (branch {branch})" if branch else "")),
        " ".join(q(a) for a in [*args, "--", remote, "."]),
    ]
    if commit:
        lines.append(f"git -c advice.detachedHead=false checkout --quiet {q(commit)}")
    lines += [
        "commit=$(git rev-parse HEAD)",
        "author=$(git log -1 --format='%an <%ae>')",
        "message=$(git log -1 --format=%s)",
        f"branch={q(branch)}" if branch else
        'branch=$(git rev-parse --abbrev-ref HEAD); [ "$branch" = HEAD ] && branch=""',
        'printf \'commit=%s\\nauthor=%s\\nmessage=%s\\nbranch=%s\\n\' "$commit" "$author" "$message" "$branch" >>"$METAFILE"',
        'echo "checked out $(printf %.12s "$commit") $message"',
    ]
    return "\n".join(lines) + "\n"


def step_script(spec: dict) -> str | None:
    """The step's work as a shell script; None when there is nothing to run (no commands)."""
    if spec.get("type") == "git-checkout":
        return git_checkout_script(spec.get("params") or {})
    commands = [c for c in spec.get("commands") or [] if c.strip()]
    if not commands:
        return None
    return "set -e\n" + "\n".join(commands) + "\n"
