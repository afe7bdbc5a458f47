"""The expiry sweep: records past their TTL are removed from every replica (object counts and
memory shrink, `expired_objects` counts them), records without a TTL stay, and the removal
survives kill -9 and restart."""

import aerospike
from aerospike import exception as ex

from cluster import Cluster, info, wait_until

NS = "exp"


def objects(cluster):
    """Copies of the namespace's records over every live node."""
    total = 0
    for i in cluster.live():
        figures = dict(kv.split("=", 1) for kv in info(cluster.port(i), f"namespace/{NS}").split(";"))
        total += int(figures["objects"])
    return total


def expired_objects(cluster):
    total = 0
    for i in cluster.live():
        figures = dict(kv.split("=", 1) for kv in info(cluster.port(i), f"namespace/{NS}").split(";"))
        total += int(figures["expired_objects"])
    return total


def test_expired_records_are_removed_everywhere(tmp_path):
    # Idle groups evicted as soon as allowed: the restarted node must still learn, from
    # leaders started again for it, what was committed after the last commit index it stored
    # (a restarted node once got their heartbeats before its groups were open, and kept
    # expired records).
    c = Cluster(tmp_path, extra_args=["--evict-idle-ms", "1"])
    c.start_all()
    try:
        assert info(c.port(1), f"create-namespace:namespace={NS};nsup-period=1") == "ok"
        c.wait_ready(namespaces=[NS])
        assert "nsup-period=1;" in info(c.port(2), f"get-config:context=namespace;namespace={NS}")
        client = c.client(seed=1)
        try:
            def write_all():
                for i in range(200):
                    client.put((NS, "s", i), {"v": i}, policy={"ttl": 2})
                for i in range(50):
                    client.put((NS, "s", 1000 + i), {"v": i}, policy={"ttl": aerospike.TTL_NEVER_EXPIRE})
                return True
            # The client learns the new namespace at its next tend.
            wait_until("writes to the new namespace", write_all, timeout=15)
            # (Followers apply a moment after the leader answers.)
            wait_until("every copy written", lambda: objects(c) == 3 * 250, timeout=5)
            wait_until("the sweep", lambda: objects(c) == 3 * 50, timeout=20)
            assert expired_objects(c) == 3 * 200
            for i in range(50):
                assert client.get((NS, "s", 1000 + i))[2] == {"v": i}
            try:
                client.get((NS, "s", 0))
                raise AssertionError("an expired record is readable")
            except ex.RecordNotFound:
                pass
        finally:
            client.close()
        # The removals are in the log: a restarted node comes back without them.
        c.kill(2)
        c.start(2)
        c.wait_ready(namespaces=[NS])
        wait_until("node 2 replays its log",
                   lambda: objects(c) == 3 * 50, timeout=20)
    finally:
        c.stop_all()
