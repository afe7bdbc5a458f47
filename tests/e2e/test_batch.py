"""Batch requests through the official Python client against a 3-node cluster: every row is
answered as its single-record command (reads, exists, writes, operates, removes), rows whose
keys live on other nodes included, missing keys answer 2, and a batch still completes after
a node is killed."""

import time

import pytest
from aerospike_helpers.batch import records as br
from aerospike_helpers.operations import operations as op

from cluster import Cluster, wait_until

NS, SET = "test", "batch"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("batch"))
    c.start_all()
    yield c
    c.stop_all()


@pytest.fixture(scope="module")
def client(cluster):
    c = cluster.client(seed=1, total_timeout=5000)
    yield c
    c.close()


def test_batch_read_across_every_group(client):
    keys = [(NS, SET, i) for i in range(100)]
    for k in keys:
        client.put(k, {"v": k[2], "w": "x"})
    missing = [(NS, SET, 1000 + i) for i in range(5)]
    started = time.monotonic()
    rows = client.batch_read(keys + missing).batch_records
    assert time.monotonic() - started < 3.0
    assert [r.result for r in rows] == [0] * 100 + [2] * 5
    assert [r.record[2]["v"] for r in rows[:100]] == list(range(100))
    named = client.batch_read(keys[:10], ["v"]).batch_records
    assert [r.record[2] for r in named] == [{"v": i} for i in range(10)]
    # No bins: metadata only (exists).
    heads = client.batch_read(keys[:3] + missing[:1], []).batch_records
    assert [r.result for r in heads] == [0, 0, 0, 2]
    assert all(r.record[1]["gen"] == 1 for r in heads[:3])


def test_batch_writes_operates_and_removes(client):
    rows = client.batch_write(br.BatchRecords([
        br.Write((NS, SET, "w1"), [op.write("x", 1), op.read("x")]),
        br.Read((NS, SET, 5), [op.read("v")]),
        br.Remove((NS, SET, 6)),
        br.Remove((NS, SET, "never-written")),
    ])).batch_records
    assert [r.result for r in rows] == [0, 0, 0, 2]
    assert rows[0].record[2] == {"x": 1} and rows[1].record[2] == {"v": 5}
    assert client.exists((NS, SET, 6))[1] is None
    ops = client.batch_operate([(NS, SET, 7), (NS, SET, 8)], [op.increment("v", 10), op.read("v")])
    assert [r.record[2] for r in ops.batch_records] == [{"v": 17}, {"v": 18}]
    gone = client.batch_remove([(NS, SET, 9), (NS, SET, 10)])
    assert [r.result for r in gone.batch_records] == [0, 0]
    assert client.exists((NS, SET, 9))[1] is None and client.exists((NS, SET, 10))[1] is None


def test_respond_all_keys_off_stops_at_the_first_row_error(client, cluster):
    import aerospike
    from cluster import info
    groups = int(dict(kv.split("=", 1) for kv in info(
        cluster.port(1), "get-config:context=namespace;namespace=test").split(";"))["raft-groups"])

    def group(key):
        return client.get_key_partition_id(NS, SET, key) % groups

    # Keys of one group, so one node answers every row in order (with one group per
    # partition, about one key in 4,096 qualifies).
    target = group("exists")
    same = []
    for i in range(200_000):
        if group(f"k{i}") == target:
            same.append(f"k{i}")
            if len(same) == 3:
                break
    client.put((NS, SET, "exists"), {"v": 1})
    create_only = {"exists": aerospike.POLICY_EXISTS_CREATE}
    rows = [
        br.Write((NS, SET, same[0]), [op.write("v", 1)]),
        br.Write((NS, SET, "exists"), [op.write("v", 2)], policy=create_only),
        br.Read((NS, SET, same[1]), [op.read("v")]),
    ]
    # Every row answered by default: the duplicate create answers 5 in its row.
    answered = client.batch_write(br.BatchRecords(rows)).batch_records
    assert [r.result for r in answered] == [0, 5, 2]
    # Without respond-all-keys the batch ends with the row's error and later rows go
    # unanswered (the client marks them -15, no response).
    stopped = client.batch_write(br.BatchRecords(rows), {"respond_all_keys": False})
    assert stopped.result == 5
    assert [r.result for r in stopped.batch_records] == [0, 5, -15]
    # Not-found rows never stop a batch.
    rows = client.batch_read([(NS, SET, same[2]), (NS, SET, "exists")],
                             policy={"respond_all_keys": False}).batch_records
    assert [r.result for r in rows] == [2, 0]


def test_batch_after_a_node_is_killed(client, cluster):
    keys = [(NS, SET, i) for i in range(20, 60)]
    cluster.kill(3)

    def all_rows_ok():
        return all(r.result == 0 for r in client.batch_read(keys).batch_records)
    wait_until("a batch with every row answered", all_rows_ok, timeout=30)
    rows = client.batch_read(keys).batch_records
    assert [r.record[2]["v"] for r in rows] == list(range(20, 60))


def test_a_batch_filter_expression_applies_to_every_row(client):
    from aerospike_helpers import expressions as exp
    keys = [(NS, SET, i) for i in range(60, 65)]
    for k in keys:
        client.put(k, {"v": k[2]})
    policy = {"expressions": exp.GE(exp.IntBin("v"), 62).compile()}
    rows = client.batch_read(keys, policy=policy).batch_records
    assert [r.result for r in rows] == [27, 27, 0, 0, 0]
    assert [r.record[2]["v"] for r in rows[2:]] == [62, 63, 64]


def test_batches_over_batch_max_requests_are_refused_whole(tmp_path):
    small = Cluster(tmp_path, nodes=1, extra_args=["--batch-max-requests", "10"])
    small.start_all()
    try:
        c = small.client(seed=1)
        try:
            keys = [(NS, SET, i) for i in range(10)]
            assert [r.result for r in c.batch_read(keys).batch_records] == [2] * 10
            # The whole batch is refused: its result is 151, no row is answered.
            refused = c.batch_read(keys + [(NS, SET, 10)])
            assert refused.result == 151
            assert [r.result for r in refused.batch_records] == [-15] * 11
        finally:
            c.close()
    finally:
        small.stop_all()
