"""Following pod logs on Kubernetes (scheduler/kubernetes/jobrun.pod_logs): a pod that appears
after the first list is followed from its first line, while the others stream on.

The API is a stand-in here: ktestenv's kwok nodes serve no container logs, and the moment a
pod appears between the list and the follow cannot be ordered from a real server. The stand-in
only answers read_namespaced_pod_log(follow=True) with a stream that blocks until lines come."""

from __future__ import annotations

import queue
import threading

from scheduler.kubernetes import jobrun


class Stream:
    def __init__(self) -> None:
        self.q: queue.Queue = queue.Queue()

    def write(self, text: str) -> None:
        self.q.put(text.encode())

    def end(self) -> None:
        self.q.put(None)

    def stream(self):
        while (chunk := self.q.get()) is not None:
            yield chunk


class Core:
    def __init__(self) -> None:
        self.streams: dict[str, Stream] = {}
        self.tails: dict[str, int | None] = {}
        self.opened = threading.Event()

    def read_namespaced_pod_log(self, pod, namespace, follow=False, _preload_content=True, **kw):
        self.tails[pod] = kw.get("tail_lines")
        self.opened.set()
        return self.streams.setdefault(pod, Stream())


def test_a_pod_that_appears_while_following_is_followed_from_its_first_line(monkeypatch):
    monkeypatch.setattr(jobrun, "RELIST_EVERY", 0.05)
    core = Core()
    pods = ["web-a"]
    core.streams["web-a"] = Stream()
    core.streams["web-b"] = Stream()
    gen = jobrun.pod_logs(core, "ns", list(pods), "web", True, 10, list_pods=lambda: list(pods))
    core.streams["web-a"].write("2026-12-06T10:00:00Z one\n")
    first = next(gen)
    assert (first.source, first.text) == ("web-a", "one")
    core.streams["web-b"].write("2026-12-06T10:00:01Z born\n2026-12-06T10:00:02Z ready\n")
    pods.append("web-b")  # a scale-up: the pod exists now, with lines written before anyone looked
    got = [next(gen), next(gen)]
    assert [(line.source, line.number, line.text) for line in got] == [("web-b", 1, "born"), ("web-b", 2, "ready")]
    assert core.tails == {"web-a": 10, "web-b": None}  # the tail is for the pods that were there
    core.streams["web-a"].end()
    core.streams["web-b"].end()
    assert list(gen) == []  # every stream ended and no new pod: the follow ends


def test_without_a_lister_the_listed_pods_are_followed_until_they_end():
    core = Core()
    core.streams["job-x"] = Stream()
    gen = jobrun.pod_logs(core, "ns", ["job-x"], None, True, None)
    core.streams["job-x"].write("2026-12-06T10:00:00Z hello")
    core.streams["job-x"].end()
    assert [(line.number, line.text) for line in gen] == [(1, "hello")]
