"""The official Python client's single-record API against a 3-node cluster."""

import socket
import time

import aerospike
import pytest
from aerospike import exception as ex
from aerospike_helpers.operations import operations as op

from cluster import info

NS, SET = "test", "api"


@pytest.fixture
def client(cluster):
    c = cluster.client(seed=2)
    yield c
    c.close()


def test_put_get_select_exists_remove(client):
    key = (NS, SET, "k1")
    client.put(key, {"i": 1, "f": 1.5, "s": "hello", "b": bytearray(b"\x00\x01"), "l": [1, "a", [2.5]],
                     "m": {"x": 1, "y": ["z"]}, "t": True})
    _, meta, bins = client.get(key)
    assert bins == {"i": 1, "f": 1.5, "s": "hello", "b": bytearray(b"\x00\x01"), "l": [1, "a", [2.5]],
                    "m": {"x": 1, "y": ["z"]}, "t": True}
    assert meta["gen"] == 1
    _, _, sel = client.select(key, ["s", "i", "missing"])
    assert sel == {"s": "hello", "i": 1}
    _, meta = client.exists(key)
    assert meta["gen"] == 1
    client.remove(key)
    _, meta = client.exists(key)
    assert meta is None
    with pytest.raises(ex.RecordNotFound):
        client.get(key)
    with pytest.raises(ex.RecordNotFound):
        client.remove(key)


def test_int_string_and_bytes_keys(client):
    for k in (7, -7, "seven", bytearray(b"seven")):
        client.put((NS, SET, k), {"v": str(k)})
        assert client.get((NS, SET, k))[2] == {"v": str(k)}


def test_exists_policies(client):
    key = (NS, SET, "policies")
    with pytest.raises(ex.RecordNotFound):
        client.put(key, {"a": 1}, policy={"exists": aerospike.POLICY_EXISTS_UPDATE})
    client.put(key, {"a": 1}, policy={"exists": aerospike.POLICY_EXISTS_CREATE})
    with pytest.raises(ex.RecordExistsError):
        client.put(key, {"a": 2}, policy={"exists": aerospike.POLICY_EXISTS_CREATE})
    client.put(key, {"b": 2}, policy={"exists": aerospike.POLICY_EXISTS_UPDATE})
    assert client.get(key)[2] == {"a": 1, "b": 2}
    client.put(key, {"c": 3}, policy={"exists": aerospike.POLICY_EXISTS_REPLACE})
    assert client.get(key)[2] == {"c": 3}
    client.put(key, {"d": 4}, policy={"exists": aerospike.POLICY_EXISTS_CREATE_OR_REPLACE})
    assert client.get(key)[2] == {"d": 4}


def test_generation_policies(client):
    key = (NS, SET, "gen")
    client.put(key, {"a": 1})
    client.put(key, {"a": 2})
    _, meta = client.exists(key)
    assert meta["gen"] == 2
    with pytest.raises(ex.RecordGenerationError):
        client.put(key, {"a": 3}, meta={"gen": 1}, policy={"gen": aerospike.POLICY_GEN_EQ})
    client.put(key, {"a": 3}, meta={"gen": 2}, policy={"gen": aerospike.POLICY_GEN_EQ})
    with pytest.raises(ex.RecordGenerationError):
        client.put(key, {"a": 4}, meta={"gen": 3}, policy={"gen": aerospike.POLICY_GEN_GT})
    client.put(key, {"a": 4}, meta={"gen": 10}, policy={"gen": aerospike.POLICY_GEN_GT})
    assert client.get(key)[2] == {"a": 4}


def test_ttl_and_touch(client):
    key = (NS, SET, "ttl")
    client.put(key, {"a": 1}, meta={"ttl": 1000})
    _, meta = client.exists(key)
    assert 990 <= meta["ttl"] <= 1000
    client.touch(key, 5000)
    _, meta = client.exists(key)
    assert meta["gen"] == 2 and 4990 <= meta["ttl"] <= 5000
    client.put(key, {"a": 2}, meta={"ttl": aerospike.TTL_NEVER_EXPIRE})
    _, meta = client.exists(key)
    assert meta["ttl"] in (-1, 4294967295, 0xFFFFFFFF)
    short = (NS, SET, "short-lived")
    client.put(short, {"a": 1}, meta={"ttl": 1})
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if client.exists(short)[1] is None:
            break
        time.sleep(0.2)
    assert client.exists(short)[1] is None, "a record past its TTL must not be visible"
    with pytest.raises(ex.RecordNotFound):
        client.touch((NS, SET, "never-written"), 10)


def test_operate(client):
    key = (NS, SET, "ops")
    client.put(key, {"n": 1, "s": "b"})
    _, meta, bins = client.operate(key, [
        op.increment("n", 5),
        op.append("s", "c"),
        op.prepend("s", "a"),
        op.write("w", 9),
        op.read("n"),
        op.read("s"),
    ])
    assert bins == {"n": 6, "s": "abc"}
    assert meta["gen"] == 2
    _, _, bins = client.operate(key, [op.touch(100), op.read("w")])
    assert bins == {"w": 9}
    with pytest.raises(ex.BinIncompatibleType):
        client.operate(key, [op.increment("s", 1)])
    client.operate(key, [op.delete()])
    with pytest.raises(ex.RecordNotFound):
        client.get(key)
    # Increment creates the record and the bin.
    client.operate((NS, SET, "counter"), [op.increment("c", 2)])
    client.increment((NS, SET, "counter"), "c", 3)
    assert client.get((NS, SET, "counter"))[2] == {"c": 5}


def test_bin_delete_and_errors(client):
    key = (NS, SET, "bins")
    client.put(key, {"a": 1, "b": 2})
    client.put(key, {"a": None})
    assert client.get(key)[2] == {"b": 2}
    with pytest.raises(ex.AerospikeError):
        client.put((NS, SET, "long"), {"this-bin-name-is-too-long": 1})
    with pytest.raises(ex.AerospikeError) as e:
        client.put(("nosuchns", SET, "x"), {"a": 1})
    assert e.value.code in (20, -8, 4)


def test_info_through_the_client(client, cluster):
    answers = client.info_all("build")
    assert answers and all(v[1].startswith("8.") for v in answers.values())
    with pytest.raises(ex.AerospikeError):
        client.info_all("no-such-command")
    stats = info(cluster.port(1), "statistics")
    assert "cluster_size=3" in stats


def test_every_node_answers_info(cluster):
    for i in cluster.live():
        port = cluster.port(i)
        assert info(port, "node") == format(i, "X")
        assert info(port, "cluster-name") == "strato"
        assert info(port, "namespaces") == "test"
        assert info(port, "service-clear-std") == f"127.0.0.1:{port}"
        peers = info(port, "peers-clear-std")
        assert peers.count("[") == 1 + 2 * 2, peers
        assert info(port, "bogus-command").startswith("ERROR:4")


def test_garbage_on_the_service_port_closes_or_errors(cluster):
    port = cluster.port(1)
    cases = [
        b"\x00" * 8,                                   # version 0
        b"\x02\x09\x00\x00\x00\x00\x00\x00",           # unknown type
        b"\x02\x03\xff\xff\xff\xff\xff\xff",           # absurd size
        b"GET / HTTP/1.1\r\n\r\n",
        b"\x02\x03\x00\x00\x00\x00\x00\x05" + b"\x16\x00\x00\x00\x00",   # truncated AS_MSG
    ]
    for payload in cases:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            data = b""
            try:
                s.sendall(payload)
                s.shutdown(socket.SHUT_WR)
            except OSError:
                # The server may close the connection as soon as it sees a bad header.
                pass
            try:
                while True:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
            except (ConnectionResetError, socket.timeout):
                pass
            # Either closed without answering or answered with a non-zero result code.
            if data:
                assert len(data) >= 8 + 22 and data[8 + 5] != 0, (payload, data)
    # The node is still healthy.
    assert info(port, "status") == "ok"


def test_requests_sent_in_one_write_are_all_answered_in_order(cluster):
    """Requests pipelined into one write (and one split across writes) each get their own
    answer, in order: the server's buffered reads keep request boundaries."""
    def frame(command):
        body = (command + "\n").encode()
        return (2 << 56 | 1 << 48 | len(body)).to_bytes(8, "big") + body

    commands = ["status", "node", "status", "build", "namespaces"] * 20
    wire = b"".join(frame(c) for c in commands)
    with socket.create_connection(("127.0.0.1", cluster.port(1)), timeout=10) as s:
        s.sendall(wire[:5])
        time.sleep(0.05)
        s.sendall(wire[5:])
        answers = []
        buf = b""
        while len(answers) < len(commands):
            chunk = s.recv(65536)
            assert chunk, f"closed after {len(answers)} answers"
            buf += chunk
            while len(buf) >= 8:
                size = int.from_bytes(buf[:8], "big") & ((1 << 48) - 1)
                if len(buf) < 8 + size:
                    break
                answers.append(buf[8:8 + size].decode().split("\t", 1)[0])
                buf = buf[8 + size:]
    assert answers == commands
