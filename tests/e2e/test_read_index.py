"""Linearizable reads confirmed by per-peer rounds: every read sees the write before it while
a node is paused, killed and restarted, and the node's `statistics` show which path
confirmed its reads."""

import signal
import time

from aerospike import exception as ex

from cluster import Cluster, info

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


def retry(what, fn, timeout=30.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            return fn()
        except ex.AerospikeError as e:
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} kept failing: {e!r}")
            time.sleep(0.05)


def write_then_read(client, keys, tag):
    """Each key written, then read back at once: a read must see the write it follows."""
    for k in keys:
        retry(f"put {k}", lambda k=k: client.put((NS, SET, k), {"v": f"{tag}-{k}"}))
        got = retry(f"get {k}", lambda k=k: client.get((NS, SET, k))[2])
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
    finally:
        client.close()
        c.stop_all()
