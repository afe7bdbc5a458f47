"""Operator-driven membership through the roster commands, against real processes, under a
writer that records every acknowledged write: grow 3→5 and shrink 5→3, replace a node, kill
-9 a group leader while groups move, restart every node mid-rebalance. Afterwards every
acknowledged write reads back, and a removed node holds no data group any more."""

import re
import threading
import time

import aerospike
import pytest

from cluster import TEST_GROUPS, Cluster, info, wait_until

NS, SET = "test", "members"
# Data groups of the namespace: the suite's setting, or the server's default of one per
# partition.
GROUPS = TEST_GROUPS or 4096


class Writer:
    """Writes key i = {"v": i} for i = 0, 1, ...; remembers which writes were acknowledged
    and the longest stretch in which every write failed."""

    def __init__(self, cluster, seed):
        self.client = cluster.client(seed=seed, total_timeout=3000, max_retries=2)
        self.acked = []
        self.stop = threading.Event()
        self.longest_gap = 0.0
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        i = 0
        failing_since = None
        while not self.stop.is_set():
            try:
                self.client.put((NS, SET, i), {"v": i})
                self.acked.append(i)
                if failing_since is not None:
                    self.longest_gap = max(self.longest_gap, time.monotonic() - failing_since)
                    failing_since = None
            except aerospike.exception.AerospikeError:
                failing_since = failing_since or time.monotonic()
                time.sleep(0.01)
            i += 1

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(timeout=30)


def wait_observed(cluster, nodes):
    """Every live node (joining ones too: they follow the catalog) sees `nodes`."""
    want = "observed_nodes=" + ",".join(f"{n:X}" for n in sorted(nodes, reverse=True))
    wait_until(f"nodes {nodes} observed", lambda: all(
        want in info(cluster.port(i), f"roster:namespace={NS}") for i in cluster.live()))


def roster_set(cluster, via, nodes):
    ids = ",".join(f"{n:X}" for n in nodes)
    assert info(cluster.port(via), f"roster-set:namespace={NS};nodes={ids}") == "ok"
    assert info(cluster.port(via), "recluster:") == "ok"


def wait_stable(cluster, timeout=90.0):
    """Every live node answers cluster-stable with the same key, and every partition has a
    master some node claims: cluster-stable speaks of placement, not of elections, and right
    after a restart a group may still be electing its leader (a client would then find no
    node for its partition)."""
    def stable():
        keys = {info(cluster.port(i), "cluster-stable:") for i in cluster.live()}
        return len(keys) == 1 and not next(iter(keys)).startswith("ERROR")
    wait_until("a stable cluster", stable, timeout=timeout, interval=0.25)
    cluster.wait_ready(timeout=timeout)


def figures(cluster, i, command):
    """A `k=v;k=v` info answer of node i as a dict."""
    return dict(kv.split("=", 1) for kv in info(cluster.port(i), command).split(";"))


def data_groups(cluster, i):
    return int(figures(cluster, i, "statistics")["raft_groups"]) - 1  # minus the metadata group


def check_acked(cluster, writer, seed):
    assert len(writer.acked) > 50, "the writer made no progress"
    client = cluster.client(seed=seed, total_timeout=5000, max_retries=3)
    try:
        missing = []
        for k in writer.acked:
            try:
                _, _, bins = client.get((NS, SET, k))
                if bins.get("v") != k:
                    missing.append(k)
            except aerospike.exception.RecordNotFound:
                missing.append(k)
        assert not missing, f"acknowledged writes lost: {missing[:20]} ({len(missing)})"
    finally:
        client.close()


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(tmp_path, nodes=3, spares=2)
    c.start_all()
    yield c
    c.stop_all()


def test_roster_answers_and_refusals(cluster):
    cluster.start(4)
    wait_observed(cluster, [1, 2, 3, 4])
    assert info(cluster.port(4), f"roster:namespace={NS}") == \
        "roster=3,2,1:pending_roster=3,2,1:observed_nodes=4,3,2,1"
    assert info(cluster.port(1), "roster:") == \
        f"ns={NS}:roster=3,2,1:pending_roster=3,2,1:observed_nodes=4,3,2,1"
    # node 4 is not on the roster: it holds nothing
    assert data_groups(cluster, 4) == 0
    assert info(cluster.port(1), "roster-set:namespace=test").startswith("ERROR:4:missing 'nodes'")
    assert info(cluster.port(1), "roster-set:namespace=test;nodes=1,2").startswith("ERROR:4:")
    assert info(cluster.port(1), "roster-set:namespace=test;nodes=1,x,3").startswith("ERROR:4:")
    assert info(cluster.port(1), "roster-set:namespace=nope;nodes=1,2,3").startswith("ERROR:20:")
    assert info(cluster.port(1), "cluster-stable:size=9").startswith(
        "ERROR:7:cluster not specified size")
    assert info(cluster.port(1), "cluster-stable:size=x") == "ERROR:4:bad size"
    wait_stable(cluster)
    # a stored roster is pending until recluster
    assert info(cluster.port(2), "roster-set:namespace=test;nodes=1,2,3,4") == "ok"
    assert info(cluster.port(2), f"roster:namespace={NS}").startswith(
        "roster=3,2,1:pending_roster=4,3,2,1:")
    wait_until("node 3 applied it", lambda: info(cluster.port(3), f"roster:namespace={NS}")
               .startswith("roster=3,2,1:pending_roster=4,3,2,1:"))


def test_grow_to_five_and_shrink_back_under_writes(cluster):
    cluster.start(4)
    cluster.start(5)
    wait_observed(cluster, [1, 2, 3, 4, 5])
    with Writer(cluster, seed=1) as w:
        time.sleep(1)
        roster_set(cluster, 5, [1, 2, 3, 4, 5])
        wait_stable(cluster)
        grown = [data_groups(cluster, i) for i in range(1, 6)]
        ns = figures(cluster, 4, f"namespace/{NS}")
        assert (ns["ns_cluster_size"], ns["cluster_size"]) == ("5", "5")
        assert ns["migrate_partitions_remaining"] == "0"
        assert ns["unavailable_partitions"] == "0"
        # GROUPS × 3 replicas over 5 nodes, as even as can be
        assert all(3 * GROUPS // 5 <= g <= -(-3 * GROUPS // 5) for g in grown), grown
        time.sleep(1)
        roster_set(cluster, 2, [1, 2, 3])
        wait_stable(cluster)
        time.sleep(1)
    # stable means every node holds exactly its placement: the removed ones nothing
    assert [data_groups(cluster, i) for i in range(1, 6)] == [GROUPS, GROUPS, GROUPS, 0, 0]
    check_acked(cluster, w, seed=1)
    print(f"longest write gap during the changes: {w.longest_gap:.2f}s")


def test_replace_a_node_while_a_leader_is_killed(cluster):
    cluster.start(4)
    wait_observed(cluster, [1, 2, 3, 4])
    with Writer(cluster, seed=2) as w:
        time.sleep(1)
        # replace node 3 by node 4, and kill -9 node 1 (it leads groups) while groups move
        roster_set(cluster, 2, [1, 2, 4])
        time.sleep(0.3)
        cluster.kill(1)
        time.sleep(2)
        cluster.start(1)
        wait_stable(cluster)
        time.sleep(1)
    assert data_groups(cluster, 3) == 0
    check_acked(cluster, w, seed=2)


def test_restart_every_node_mid_rebalance(cluster):
    cluster.start(4)
    cluster.start(5)
    wait_observed(cluster, [1, 2, 3, 4, 5])
    client = cluster.client(seed=1)
    for k in range(300):
        client.put((NS, SET, k), {"v": k})
    client.close()
    roster_set(cluster, 1, [1, 2, 3, 4, 5])
    time.sleep(0.5)
    for i in cluster.live():
        cluster.kill(i)
    for i in range(1, 6):
        cluster.start(i)
    wait_stable(cluster)

    class Done:
        acked = list(range(300))
    check_acked(cluster, Done, seed=4)
    assert sum(data_groups(cluster, i) for i in range(1, 6)) == 3 * GROUPS


@pytest.fixture
def purging(tmp_path):
    """3 nodes (and a spare, node 4) that snapshot and purge their logs every 50 entries and
    send snapshots in 8 KiB chunks (so every transfer takes several). 16 groups whatever the
    suite's setting: a group snapshots only after 50 writes of its own, and these tests are
    about snapshots, not about many groups."""
    c = Cluster(tmp_path, nodes=3, spares=1, groups=16,
                extra_args=["--snapshot-every", "50", "--snapshot-chunk-bytes", "8192"])
    c.start_all()
    yield c
    c.stop_all()


def load_and_start_node_4(c, records, bins):
    """Write `records` keys (so every group snapshots and purges its log a few times), then
    start node 4, not yet on the roster. Returns the client."""
    client = c.client(seed=1)
    for k in range(records):
        client.put((NS, SET, k), {"v": k, **bins})
    c.start(4)
    wait_observed(c, [1, 2, 3, 4])
    return client


def check_node_4_holds_replicas(c, client, records, stride):
    assert int(figures(c, 4, f"namespace/{NS}")["objects"]) > 0
    for k in range(0, records, stride):
        assert client.get((NS, SET, k))[2]["v"] == k
    client.close()


def test_a_new_replica_behind_a_purged_log_installs_a_snapshot(purging, tmp_path):
    client = load_and_start_node_4(purging, 4000, {})
    roster_set(purging, 1, [1, 2, 3, 4])
    wait_stable(purging)
    with open(tmp_path / "n4.log", errors="replace") as f:
        assert "installed a snapshot from the leader" in f.read()
    # the leaders streamed them in chunks
    sent = []
    for i in (1, 2, 3):
        with open(tmp_path / f"n{i}.log", errors="replace") as f:
            sent += [int(n) for n in re.findall(r"sent a snapshot in (\d+) chunks", f.read())]
    assert sent and max(sent) > 1, sent
    check_node_4_holds_replicas(purging, client, 4000, 7)


def test_a_learner_killed_during_its_snapshot_install_catches_up(purging):
    client = load_and_start_node_4(purging, 3000, {"p": "x" * 2000})
    roster_set(purging, 2, [1, 2, 3, 4])
    # kill -9 the new replica while its snapshots are streaming in, then bring it back
    wait_until("node 4 receiving", lambda: data_groups(purging, 4) > 0, timeout=30, interval=0.05)
    purging.kill(4)
    time.sleep(1)
    purging.start(4)
    wait_stable(purging)
    check_node_4_holds_replicas(purging, client, 3000, 11)
