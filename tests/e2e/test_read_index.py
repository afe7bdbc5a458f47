"""Linearizable reads confirmed by per-peer rounds: every read sees the write before it while
a node is paused, killed and restarted, and the node's `statistics` show which path
confirmed its reads."""

import signal

from aerospike import exception as ex

from cluster import Cluster, info, retry

NS, SET = "test", "ri"


def figures(c, i):
    return dict(p.split("=", 1) for p in info(c.port(i), "statistics").split(";") if "=" in p)


def confirmed(c, nodes):
    """(per-peer, openraft) confirmed reads summed over `nodes`."""
    peer = raft = 0
    for i in nodes:
        f = figures(c, i)
        peer += int(f["read_index_peer_confirmed"])
        raft += int(f["read_index_raft_confirmed"])
    return peer, raft


def write_then_read(client, keys, tag, ns=NS):
    """Each key written, then read back at once: a read must see the write it follows.

    Each phase writes keys of its own (`tag` in the key): a put that timed out against a
    paused node is in doubt and may still be applied when the node resumes, after a later
    phase's write of the same key, which linearizability allows."""
    for k in (f"{tag}{n}" for n in keys):
        retry(f"put {k}", lambda k=k: client.put((ns, SET, k), {"v": f"{tag}-{k}"}))
        got = retry(f"get {k}", lambda k=k: get(client, (ns, SET, k)))
        assert got == {"v": f"{tag}-{k}"}, (k, got)


def get(client, key):
    """A record's bins, or None if not found (a stale read, never retried away)."""
    try:
        return client.get(key)[2]
    except ex.RecordNotFound:
        return None


def read_back(client, phases, ns=NS):
    """Every key of every earlier phase still reads its value (a late in-doubt write of a
    phase's own key writes the same value)."""
    for tag, keys in phases:
        for k in (f"{tag}{n}" for n in keys):
            got = retry(f"get {k}", lambda k=k: get(client, (ns, SET, k)))
            assert got == {"v": f"{tag}-{k}"}, (k, got)


def test_reads_are_confirmed_per_peer_through_a_pause_a_crash_and_a_restart(tmp_path):
    c = Cluster(tmp_path)
    c.start_all()
    client = c.client(seed=1, total_timeout=1000)
    try:
        # A settled cluster confirms its reads by per-peer rounds.
        before = confirmed(c, (1, 2, 3))
        write_then_read(client, range(200), "a")
        after = confirmed(c, (1, 2, 3))
        assert after[0] - before[0] >= 190, (before, after)

        # One peer stops answering (SIGSTOP): the others still confirm each other's reads,
        # and the paused node's groups move to new leaders without a stale read.
        c.procs[3].send_signal(signal.SIGSTOP)
        try:
            before = confirmed(c, (1, 2))
            write_then_read(client, range(200), "b")
            after = confirmed(c, (1, 2))
            assert after[0] - before[0] >= 150, (before, after)
        finally:
            c.procs[3].send_signal(signal.SIGCONT)
        # The paused node comes back believing it still leads its old groups: its reads
        # must not answer from before the writes made meanwhile.
        write_then_read(client, range(200), "c")

        victim = next(i for i in (1, 2, 3) if c.leads_some(i))
        c.kill(victim)
        write_then_read(client, range(200), "d")
        c.start(victim)
        c.wait_ready()
        write_then_read(client, range(200), "e")
        read_back(client, [(tag, range(200)) for tag in "abcde"])
    finally:
        client.close()
        c.stop_all()


def test_five_replicas_need_two_peers_and_survive_two_paused(tmp_path):
    """With five voters a read needs two of its four peers: confirmed per peer while every
    node runs and while two of them are paused (a majority of three still answers)."""
    c = Cluster(tmp_path, nodes=5)
    c.start_all()
    client = c.client(seed=1, total_timeout=1000)
    try:
        assert info(c.port(1), "create-namespace:namespace=r5;replication-factor=5;raft-groups=4",
                    timeout=15.0) == "ok"
        c.wait_ready(namespaces=["r5"])
        before = confirmed(c, c.live())
        write_then_read(client, range(100), "a", ns="r5")
        after = confirmed(c, c.live())
        assert after[0] - before[0] >= 95, (before, after)

        paused = (4, 5)
        for i in paused:
            c.procs[i].send_signal(signal.SIGSTOP)
        try:
            running = (1, 2, 3)
            before = confirmed(c, running)
            write_then_read(client, range(100), "b", ns="r5")
            after = confirmed(c, running)
            assert after[0] - before[0] >= 75, (before, after)
        finally:
            for i in paused:
                c.procs[i].send_signal(signal.SIGCONT)
        write_then_read(client, range(100), "c", ns="r5")
        read_back(client, [(tag, range(100)) for tag in "abc"], ns="r5")
    finally:
        client.close()
        c.stop_all()
