"""Sleeping groups at the default shape (4,096 groups, one per partition): they run no timers,
wake on a write (whose append renews the leader lease while every voter is alive) and on a
vote, and a node killed while they sleep loses no acknowledged write while its partitions
get masters again quickly."""

import time

import aerospike

from cluster import Cluster, info, wait_until

NS, SET = "test", "sleepy"


def stats(cluster, i):
    return dict(kv.split("=", 1) for kv in info(cluster.port(i), "statistics").split(";") if "=" in kv)


def groups_led(cluster):
    return sum(int(stats(cluster, i)["raft_groups_led"]) for i in cluster.live())


def all_asleep(cluster):
    return all(int(stats(cluster, i)["raft_groups_awake"]) == 0 for i in cluster.live())


def kill_and_check(cluster, victim, acked):
    """Kill `victim`: every group gets a leader again within 10 s, every acknowledged write
    in `acked` reads back through a survivor, and keys 300..399 are still writable."""
    cluster.kill(victim)
    t0 = time.monotonic()
    wait_until("every group led again", lambda: groups_led(cluster) >= 4097, timeout=20,
               interval=0.05)
    took = time.monotonic() - t0
    assert took < 10, f"groups took {took:.1f} s to get leaders"
    client = cluster.client(seed=cluster.live()[0], total_timeout=5000)
    try:
        for k, v in acked.items():
            _, _, bins = client.get((NS, SET, k))
            assert bins["v"] == v, k
        for k in range(300, 400):
            client.put((NS, SET, k), {"v": k})
    finally:
        client.close()


def restart_and_read(cluster, victim):
    """Start `victim` again and read every 11th of the keys 0..399 through it."""
    cluster.start(victim)
    wait_until("victim ready", lambda: int(info(cluster.port(victim), "partition-generation")) >= 0,
               timeout=30)
    client = cluster.client(seed=victim, total_timeout=5000)
    try:
        for k in range(0, 400, 11):
            _, _, bins = client.get((NS, SET, k))
            assert bins["v"] == k
    finally:
        client.close()


def test_groups_sleep_wake_on_writes_and_survive_a_kill_while_asleep(tmp_path):
    c = Cluster(tmp_path, groups=None)
    try:
        c.start_all()
        assert int(info(c.port(1), "get-config:context=namespace;namespace=test")
                   .split("raft-groups=")[1].split(";")[0]) == 4096
        # One leader per group (plus the metadata group), and then no timers anywhere.
        wait_until("every group led", lambda: groups_led(c) >= 4097, timeout=60)
        wait_until("every group asleep", lambda: all_asleep(c), timeout=30)

        # A write to a sleeping group succeeds at once: with every voter alive its append
        # renews the lapsed lease, no heartbeat round goes first.
        client = c.client(seed=2, total_timeout=5000)
        renewals = sum(int(stats(c, i)["raft_lease_renewals"]) for i in c.live())
        acked = {}
        for k in range(300):
            client.put((NS, SET, k), {"v": k})
            acked[k] = k
        assert sum(int(stats(c, i)["raft_lease_renewals"]) for i in c.live()) == renewals
        for k in range(0, 300, 7):
            _, _, bins = client.get((NS, SET, k))
            assert bins["v"] == k

        # Kill the node leading the most groups while they sleep: its partitions get masters
        # again (the survivors campaign; the sleeping replicas grant the votes) and no
        # acknowledged write is lost.
        wait_until("every group asleep again", lambda: all_asleep(c), timeout=30)
        led = {i: int(stats(c, i)["raft_groups_led"]) for i in c.live()}
        victim = max(led, key=led.get)
        assert led[victim] > 1000, led
        campaigns = sum(int(stats(c, i)["raft_campaigns"]) for i in c.live() if i != victim)
        client.close()
        kill_and_check(c, victim, acked)
        assert sum(int(stats(c, i)["raft_campaigns"]) for i in c.live()) > campaigns

        # The victim comes back: it learns its leaders from them and catches up.
        restart_and_read(c, victim)
    except BaseException:
        print(c.logs())
        raise
    finally:
        c.stop_all()


def test_a_follower_vote_wakes_a_sleeping_group(tmp_path):
    """A vote reaches replicas whose group sleeps: a leadership transfer (the target
    campaigns, the other replica grants while asleep) completes on a sleeping group."""
    c = Cluster(tmp_path, groups=64)
    try:
        c.start_all()
        wait_until("every group asleep", lambda: all_asleep(c), timeout=30)
        # Kill one node: every group it led elects a successor by votes granted by replicas
        # that were asleep a moment before.
        led = {i: int(stats(c, i)["raft_groups_led"]) for i in c.live()}
        victim = max(led, key=led.get)
        terms = sum(int(stats(c, i)["raft_terms"]) for i in c.live() if i != victim)
        c.kill(victim)
        wait_until("every group led again", lambda: groups_led(c) >= 65, timeout=20)
        assert sum(int(stats(c, i)["raft_terms"]) for i in c.live()) > terms
        client = c.client(seed=c.live()[0], total_timeout=5000)
        try:
            for k in range(64):
                client.put((NS, SET, k), {"v": k})
        finally:
            client.close()
    except BaseException:
        print(c.logs())
        raise
    finally:
        c.stop_all()


def evicted(cluster, i):
    return int(stats(cluster, i)["raft_groups_evicted"])


def test_evicted_groups_start_again_on_demand_and_survive_a_kill(tmp_path):
    """Idle groups have their Raft instances stopped (evicted) and started again by the
    next request: a client's write or read, a peer's append, a campaign. A node killed while
    its groups are evicted loses no acknowledged write; the survivors' evicted replicas
    start, campaign and grant votes, and every partition gets a master again."""
    # Evict after two leader leases (the shortest allowed), not 10 s.
    c = Cluster(tmp_path, groups=None, extra_args=["--evict-idle-ms", "1"])
    try:
        c.start_all()
        wait_until("every group led", lambda: groups_led(c) >= 4097, timeout=60)
        wait_until("every group evicted", lambda: all(evicted(c, i) == 4096 for i in c.live()),
                   timeout=30)
        # Leaders are still known and reported while evicted.
        assert groups_led(c) >= 4097

        client = c.client(seed=1, total_timeout=5000)
        acked = {}
        for k in range(300):
            client.put((NS, SET, k), {"v": k})
            acked[k] = k
        for k in range(0, 300, 7):
            _, _, bins = client.get((NS, SET, k))
            assert bins["v"] == k
        restarts = sum(int(stats(c, i)["raft_restarts"]) for i in c.live())
        assert restarts > 0
        client.close()

        wait_until("every group evicted again",
                   lambda: all(evicted(c, i) == 4096 for i in c.live()), timeout=30)
        led = {i: int(stats(c, i)["raft_groups_led"]) for i in c.live()}
        victim = max(led, key=led.get)
        kill_and_check(c, victim, acked)

        # The victim comes back while the survivors' groups are evicted again.
        wait_until("survivors evicted", lambda: all(evicted(c, i) == 4096 for i in c.live()),
                   timeout=30)
        restart_and_read(c, victim)
    except BaseException:
        print(c.logs())
        raise
    finally:
        c.stop_all()
