"""The standalone broker (dice-memory://): consumers are woken by messages and acks, not by polling."""

import socket
import threading
import time

import pytest
from kombu import Connection, Consumer, Exchange, Producer, Queue

from dice_console import broker


@pytest.fixture
def queue(request):
    name = f"test-broker-{request.node.name}"
    return Queue(name, Exchange(name, type="direct"), routing_key=name)


def _consume(conn, queue, received, prefetch=None):
    channel = conn.channel()
    if prefetch:
        channel.basic_qos(0, prefetch, False)
    consumer = Consumer(channel, [queue], callbacks=[lambda body, message: received.append((body, message))])
    consumer.consume()
    return channel


def test_a_waiting_consumer_gets_a_message_put_from_another_thread(queue):
    received = []
    with Connection("dice-memory://") as conn:
        _consume(conn, queue, received, prefetch=0)
        sender = threading.Timer(0.2, lambda: Producer(Connection("dice-memory://").channel()).publish(
            {"n": 1}, exchange=queue.exchange, routing_key=queue.routing_key, declare=[queue]))
        sender.start()
        conn.drain_events(timeout=5)
        sender.join()
    assert [body for body, _ in received] == [{"n": 1}]


URL = "dice-memory://"


def test_an_idle_consumer_does_not_poll_and_times_out(queue, monkeypatch):
    looks = []
    # The settings once asked kombu's memory transport to poll every 5 ms: ~100 looks here.
    with Connection(URL, transport_options={"polling_interval": 0.005}) as conn:
        received = []
        _consume(conn, queue, received)
        original = conn.transport.cycle.get

        def counting(*args, **kwargs):
            looks.append(1)
            return original(*args, **kwargs)

        monkeypatch.setattr(conn.transport.cycle, "get", counting)
        started = time.monotonic()
        with pytest.raises(socket.timeout):
            conn.drain_events(timeout=0.5)
        assert time.monotonic() - started >= 0.5
    # This one looks when told of a change, and at least every FALLBACK seconds.
    assert len(looks) <= 0.5 / broker.FALLBACK + 2, len(looks)


def test_an_ack_wakes_a_consumer_held_back_by_its_prefetch_limit(queue):
    received = []
    with Connection("dice-memory://") as conn:
        _consume(conn, queue, received, prefetch=1)
        producer = Producer(conn.channel())
        for n in (1, 2):
            producer.publish({"n": n}, exchange=queue.exchange, routing_key=queue.routing_key, declare=[queue])
        conn.drain_events(timeout=5)
        assert [body for body, _ in received] == [{"n": 1}]
        # The second message waits for a free prefetch slot; acking the first frees it.
        threading.Timer(0.2, received[0][1].ack).start()
        conn.drain_events(timeout=5)
    assert [body for body, _ in received] == [{"n": 1}, {"n": 2}]
