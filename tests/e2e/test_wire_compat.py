"""Behaviours where an Aerospike application must see exactly what Aerospike does, found by
running the official Python client against a cluster: modify ops on bins of another type,
reads that name no bins, the second a record expires, read touches and the log-sink info
commands."""

import time

import aerospike
import pytest
from aerospike import exception as ex
from aerospike_helpers.operations import operations as op

from cluster import info, wait_until

NS, SET = "test", "compat"


@pytest.fixture(scope="module")
def cluster(module_cluster):
    return module_cluster


def stat(cluster, name):
    """The sum of a `statistics` counter over every node."""
    total = 0
    for i in cluster.live():
        pairs = dict(kv.split("=", 1) for kv in info(cluster.port(i), "statistics").split(";"))
        total += int(pairs[name])
    return total


def test_modify_ops_on_bins_of_another_type(client):
    # The Python client refuses non-string appends and non-numeric increments itself (-2);
    # what reaches the server: a missing bin is created from the operand, an existing bin
    # of a type the op cannot combine answers 12 (never 4) and nothing changes. (The
    # server-side cases the client cannot send are covered by storage's apply tests.)
    key = (NS, SET, "modify")
    client.put(key, {"n": 1, "s": "x"})
    client.operate(key, [op.append("b", b"xy"), op.increment("f", 1.5), op.prepend("t", "p")])
    assert client.get(key)[2] == {"n": 1, "s": "x", "b": b"xy", "f": 1.5, "t": "p"}
    for bad in ([op.append("n", "y")], [op.append("s", b"q")], [op.increment("s", 1)],
                [op.increment("f", 1)], [op.increment("n", 1.5)], [op.prepend("b", "z")]):
        with pytest.raises(ex.BinIncompatibleType):
            client.operate(key, bad)
    _, meta, bins = client.get(key)
    assert meta["gen"] == 2 and bins["n"] == 1 and bins["s"] == "x"


def test_a_read_naming_no_bins_is_a_parameter_error(client):
    key = (NS, SET, "nobins")
    client.put(key, {"a": 1})
    with pytest.raises(ex.AerospikeError) as e:
        client.select(key, [])
    assert e.value.code == 4, e.value
    # A missing record is still "not found" (the check comes after the lookup).
    with pytest.raises(ex.RecordNotFound):
        client.select((NS, SET, "nobins-missing"), [])


def test_a_record_lives_through_its_void_time_second(client):
    # Write late in a second, with a TTL of 1: the void time is the next second. Aerospike
    # expires a record only once the clock is past its void time, so it is still readable
    # during that second and gone in the one after.
    deadline = time.monotonic() + 10
    while time.time() % 1 < 0.85 or time.time() % 1 > 0.95:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    written = int(time.time())
    key = (NS, SET, "void-second")
    client.put(key, {"a": 1}, meta={"ttl": 1})
    time.sleep(written + 1.2 - time.time())
    assert client.exists(key)[1] is not None, "expired during its void-time second"
    time.sleep(max(0.0, written + 2.2 - time.time()))
    assert client.exists(key)[1] is None, "alive after its void-time second"


def test_read_touch_resets_the_ttl(client, cluster):
    key = (NS, SET, "touched")
    client.put(key, {"a": 1}, meta={"ttl": 10})
    time.sleep(3.1)
    before = stat(cluster, "read_touch_success")
    # 7 of 10 seconds left: above 50%, no touch; below 80%, touch.
    client.get(key, policy={"read_touch_ttl_percent": 50})
    client.get(key, policy={"read_touch_ttl_percent": -1})
    client.get(key, policy={"read_touch_ttl_percent": 0})  # namespace default 0: never
    assert stat(cluster, "read_touch_success") == before
    assert client.exists(key)[1]["ttl"] <= 7
    _, meta, bins = client.get(key, policy={"read_touch_ttl_percent": 80})
    assert bins == {"a": 1} and meta["gen"] == 1
    wait_until("the read touch", lambda: client.exists(key)[1]["ttl"] >= 9, timeout=10)
    assert client.exists(key)[1]["gen"] == 1, "a read touch keeps the generation"
    assert stat(cluster, "read_touch_success") == before + 1
    with pytest.raises(ex.AerospikeError) as e:
        client.get(key, policy={"read_touch_ttl_percent": 101})
    assert e.value.code in (4, -2), e.value


def test_read_touch_by_namespace_default(client, cluster):
    port = cluster.port(1)
    assert info(port, "set-config:context=namespace;namespace=test;default-read-touch-ttl-pct=101") \
        .startswith("ERROR:4:")
    assert info(port, "set-config:context=namespace;namespace=test;default-read-touch-ttl-pct=90") == "ok"
    try:
        for i in cluster.live():
            wait_until("the setting everywhere", lambda i=i: "default-read-touch-ttl-pct=90" in
                       info(cluster.port(i), "get-config:context=namespace;namespace=test"))
        key = (NS, SET, "default-touch")
        never = {"read_touch_ttl_percent": -1}  # probes that must not touch themselves
        client.put(key, {"a": 1}, meta={"ttl": 10})
        time.sleep(2.1)
        # -1 overrides the namespace's 90%: never touch.
        client.get(key, policy=never)
        time.sleep(0.5)
        assert client.exists(key, policy=never)[1]["ttl"] <= 8
        # 0 = the namespace's 90%: 8 of 10 seconds left is below it.
        client.get(key)
        wait_until("the read touch",
                   lambda: client.exists(key, policy=never)[1]["ttl"] >= 9, timeout=10)
    finally:
        info(port, "set-config:context=namespace;namespace=test;default-read-touch-ttl-pct=0")


def test_log_sinks(cluster):
    port = cluster.port(1)
    assert info(port, "logs") == "0:stderr"
    contexts = dict(kv.split(":") for kv in info(port, "log/0").split(";"))
    assert contexts["strato"] == "INFO" and contexts["openraft"] == "WARNING", contexts
    assert info(port, "log/7").startswith("ERROR:4:")
