"""Truncate through the official Python client and the info commands: records last updated
before the cut-off are gone from every node, later ones and other sets stay, and bad
cut-offs get Aerospike's errors."""

import time

import pytest
from aerospike import exception as ex

from cluster import info, wait_until

NS = "test"

# A truncate proposes in every group of the namespace and answers once all committed: about
# 1.3 s at 4,096 groups on two cores, more than the client's default info timeout of 1 s.
SLOW_INFO = {"timeout": 10000}


@pytest.fixture(scope="module")
def cluster(module_cluster):
    return module_cluster


def objects(cluster, set_name):
    """Copies of the set's records over every node (`sets/NS/SET` objects)."""
    total = 0
    for i in cluster.live():
        answer = info(cluster.port(i), f"sets/{NS}/{set_name}")
        if answer:
            props = dict(kv.split("=", 1) for kv in answer.rstrip(";").split(":"))
            total += int(props["objects"])
    return total


def test_truncate_a_set_before_a_cut_off(client, cluster):
    old = [(NS, "t1", i) for i in range(20)]
    new = [(NS, "t1", 100 + i) for i in range(10)]
    other = [(NS, "t2", i) for i in range(5)]
    for k in old + other:
        client.put(k, {"v": 1})
    time.sleep(0.05)
    cut = time.time_ns()
    time.sleep(0.05)
    for k in new:
        client.put(k, {"v": 2})
    client.truncate(NS, "t1", cut, SLOW_INFO)
    for k in old:
        assert client.exists(k)[1] is None, k
    for k in new + other:
        assert client.exists(k)[1] is not None, k
    # Gone from every replica (followers apply a moment after the leaders answered).
    wait_until("the truncate on every replica",
               lambda: objects(cluster, "t1") == 3 * len(new), timeout=5)
    assert objects(cluster, "t2") == 3 * len(other)
    lut = info(cluster.port(2), f"sets/{NS}/t1")
    assert f"truncate_lut={cut // 1_000_000 - 1262304000000}" in lut, lut
    # A write after the truncate is kept.
    client.put(old[0], {"v": 3})
    assert client.get(old[0])[2] == {"v": 3}


def test_truncate_the_whole_namespace(client, cluster):
    keys = [(NS, s, i) for s in ("n1", "n2") for i in range(10)]
    for k in keys:
        client.put(k, {"v": 1})
    time.sleep(0.01)  # a record written in the cut-off's millisecond survives, as in Aerospike
    client.truncate(NS, None, 0, SLOW_INFO)
    for k in keys:
        assert client.exists(k)[1] is None, k
    wait_until("the truncate on every replica",
               lambda: objects(cluster, "n1") == 0 and objects(cluster, "n2") == 0, timeout=5)
    client.put(keys[0], {"v": 2})
    assert client.get(keys[0])[2] == {"v": 2}


def test_truncate_errors(client, cluster):
    port = cluster.port(3)
    assert info(port, f"truncate:namespace={NS};set=t1;lut=1") == "ERROR:4:would truncate to 0"
    future = time.time_ns() + 3600 * 10**9
    assert info(port, f"truncate:namespace={NS};set=t1;lut={future}") == \
        "ERROR:4:would truncate in the future"
    assert info(port, f"truncate-namespace:namespace={NS};set=t1") == "ERROR:4:unexpected set name"
    assert info(port, "truncate:namespace=;set=t1") == "ERROR:20:missing 'namespace' value"
    assert info(port, f"truncate:namespace={NS};set=") == "ERROR:4:missing 'set' value"
    # A namespace or set that does not exist: ok, as Aerospike answers.
    client.truncate("fake_namespace", "truncate", 0, SLOW_INFO)
    client.truncate(NS, "fake_set", 0, SLOW_INFO)
    with pytest.raises(ex.AerospikeError):
        client.truncate(NS, "t1", 1, SLOW_INFO)
    # An emptied set stays listed with its cut-off until the undo forgets it.
    assert "objects=0:" in info(port, f"sets/{NS}/t1")
    assert "truncate_lut=0:" not in info(port, f"sets/{NS}/t1")
    assert info(port, f"truncate-undo:namespace={NS};set=t1") == "ok"
    assert "truncate_lut=" not in info(port, f"sets/{NS}/t1")
