"""The process starter: a small process that starts the console's shims, so the console never forks.

Run by the console as `python3 -S spawner.py` (standard library only, no threads of Django):
CPython holds the GIL while it vforks and the child execs, which on a busy machine takes
milliseconds; a burst of 100 step starts from inside the console stalled every other thread of
it (collecting finished steps, serving pages) for that long each. Here the fork happens in a
process that does nothing else.

Protocol: one JSON object per line on stdin, {"argv": [...], "env": {...}}; one answer per line
on stdout, {"pid": N} or {"error": "..."}. The started process gets /dev/null for its standard
streams, its own session (like Popen's start_new_session) and default SIGPIPE/SIGXFSZ. The
starter reaps its children (their exit status is the shim's business: it writes an exit file)
and exits at the end of its input, i.e. when the console closes the pipe or dies; the processes
it started keep running.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time

_DEFAULT_SIGNALS = tuple(s for s in (getattr(signal, "SIGPIPE", None), getattr(signal, "SIGXFSZ", None)) if s)


def _reap() -> None:
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            time.sleep(0.05)  # no child now
        except InterruptedError:
            pass


def start(argv: list[str], env: dict[str, str]) -> int:
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
        (os.POSIX_SPAWN_DUP2, 1, 2),
    ]
    return os.posix_spawn(argv[0], argv, env, file_actions=actions, setsid=True, setsigdef=_DEFAULT_SIGNALS)


def main() -> int:
    os.chdir("/")
    threading.Thread(target=_reap, name="reaper", daemon=True).start()
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    for line in stdin:
        try:
            request = json.loads(line)
            answer = {"pid": start([str(a) for a in request["argv"]],
                                   {str(k): str(v) for k, v in request["env"].items()})}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            answer = {"error": f"{exc.__class__.__name__}: {exc}"}
        stdout.write(json.dumps(answer).encode() + b"\n")
        stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
