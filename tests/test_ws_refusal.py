# ruff: noqa: F811
"""A refused WebSocket reaches the client with its close code, over a real ASGI server: 4401 means
"sign in", 4404 "no such thing or not yours". Channels answers a socket closed before it is
accepted with HTTP 403 whatever the code, so every consumer accepts first, then closes at once
(dice_console.wsaccess.refuse), and nothing else is sent in between."""

from __future__ import annotations

import pytest
from websockets.exceptions import ConnectionClosed

from tests.security.conftest import live, ws_connect  # noqa: F401 - the ASGI server fixture


def _close_code(live, path: str, **kwargs) -> tuple[int, list]:
    """The close code the server sent, and whatever came before it (must be nothing)."""
    received = []
    with ws_connect(live, path, **kwargs) as ws, pytest.raises(ConnectionClosed) as closed:
        while True:
            received.append(ws.recv(timeout=10))
    return closed.value.rcvd.code, received


def _run(tenant):
    from apps.pipelines.models import PipelineRun

    return PipelineRun.objects.create(application=tenant.app, source="version: '1.1'\nstages: []\n",
                                      status="running", created_by=tenant.owner)


@pytest.mark.parametrize("path", ["/ws/events/", "/ws/logs/", "/ws/runs/{run}/", "/ws/runtimes/1/",
                                  "/ws/clusters/1/usage/"])
def test_an_anonymous_socket_is_closed_with_4401_not_answered_403(live, tenant_a, path):
    path = path.format(run=_run(tenant_a).pk)
    assert _close_code(live, path) == (4401, [])
    assert _close_code(live, path, token="not-a-token") == (4401, [])


@pytest.mark.parametrize("path", ["/ws/runs/{run}/", "/ws/runs/999999/", "/ws/runtimes/999999/",
                                  "/ws/clusters/999999/usage/"])
def test_what_is_not_the_users_or_does_not_exist_is_closed_with_4404(live, tenant_a, tenant_b, path):
    path = path.format(run=_run(tenant_a).pk)
    assert _close_code(live, path, token=tenant_b.token) == (4404, [])


def test_the_owner_is_let_in_where_another_tenant_gets_4404(live, tenant_a, tenant_b):
    run = _run(tenant_a)
    with ws_connect(live, f"/ws/runs/{run.pk}/", token=tenant_a.token) as ws, pytest.raises(TimeoutError):
        ws.recv(timeout=0.5)  # open, and quiet until the run moves
    assert _close_code(live, f"/ws/runs/{run.pk}/", token=tenant_b.token) == (4404, [])


def test_a_browser_offering_a_token_protocol_gets_it_back_with_the_close_code(live, tenant_a):
    """Browsers fail a handshake whose answer names none of the protocols they offered (and the
    close code with it): a refused socket selects the offered dice-token protocol too."""
    offered = "dice-token.not-a-token"
    with ws_connect(live, "/ws/logs/", subprotocols=[offered]) as ws:
        assert ws.subprotocol == offered
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd.code == 4401
