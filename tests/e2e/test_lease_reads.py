"""Lease reads: the opt-in namespace setting, reads through it across a leader's crash and a
full restart, and the fault-injection clock command the Jepsen clock nemesis drives."""

from cluster import Cluster, info, retry, wait_until

CHANGE_TIMEOUT = 15.0


def kv(text):
    return dict(p.split("=", 1) for p in text.split(";") if "=" in p)


def lease_setting(c, i, ns):
    return kv(info(c.port(i), f"get-config:context=namespace;namespace={ns}",
                   timeout=CHANGE_TIMEOUT)).get("lease-reads")


def write_then_read(client, ns, keys, tag):
    """Each key written, then read back at once: a read must see the write it follows."""
    for k in keys:
        retry(f"put {k}", lambda k=k: client.put((ns, "lr", k), {"v": f"{tag}-{k}"}))
        got = retry(f"get {k}", lambda k=k: client.get((ns, "lr", k))[2])
        assert got == {"v": f"{tag}-{k}"}, (k, got)


def test_lease_reads_are_a_namespace_setting_that_survives_crashes(tmp_path):
    c = Cluster(tmp_path, extra_args=["--allow-fault-injection"])
    c.start_all()
    try:
        # Off by default; on at creation; refused with a readable error when malformed.
        assert lease_setting(c, 1, "test") == "false"
        assert info(c.port(1), "create-namespace:namespace=lr;raft-groups=4;lease-reads=true",
                    timeout=CHANGE_TIMEOUT) == "ok"
        for i in (1, 2, 3):
            wait_until(f"lease-reads on node {i}", lambda i=i: lease_setting(c, i, "lr") == "true")
        assert info(c.port(2), "set-config:context=namespace;namespace=test;lease-reads=maybe",
                    timeout=CHANGE_TIMEOUT).startswith("ERROR:4:")
        assert info(c.port(2), "create-namespace:namespace=lr2;lease-reads=2",
                    timeout=CHANGE_TIMEOUT).startswith("ERROR:4:")
        assert "lr2" not in info(c.port(2), "namespaces").split(";")
        c.wait_ready(namespaces=["lr"])

        client = c.client(seed=1)
        try:
            write_then_read(client, "lr", range(200), "a")
            # A node that leads some groups dies: its reads move to new leaders, which must
            # not answer from before the writes acknowledged by the old one.
            victim = next(i for i in (1, 2, 3) if c.leads_some(i))
            c.kill(victim)
            write_then_read(client, "lr", range(200), "b")
            c.start(victim)
            c.wait_ready(namespaces=["lr"])
            write_then_read(client, "lr", range(200), "c")
        finally:
            client.close()

        # Turned off and on live, on another node than the one that created it.
        assert info(c.port(3), "set-config:context=namespace;id=lr;lease-reads=false",
                    timeout=CHANGE_TIMEOUT) == "ok"
        for i in (1, 2, 3):
            wait_until(f"lease-reads off on {i}", lambda i=i: lease_setting(c, i, "lr") == "false")
        assert info(c.port(3), "set-config:context=namespace;id=lr;lease-reads=true",
                    timeout=CHANGE_TIMEOUT) == "ok"

        # The setting is part of the replicated catalog: it survives a restart of every node.
        c.stop_all()
        for i in (1, 2, 3):
            c.start(i)
        c.wait_ready(namespaces=["lr"])
        for i in (1, 2, 3):
            # A restarted node applies the catalog's last entries once its group commits again.
            wait_until(f"lease-reads back on node {i}",
                       lambda i=i: lease_setting(c, i, "lr") == "true")
            assert lease_setting(c, i, "test") == "false"
        client = c.client(seed=2)
        try:
            for k in range(200):
                got = retry(f"get {k}", lambda k=k: client.get(("lr", "lr", k))[2])
                assert got == {"v": f"c-{k}"}, (k, got)
        finally:
            client.close()

        # The clock the nemesis drives: readable, settable within bounds, reset.
        assert info(c.port(1), "clock-rate") == "1"
        assert info(c.port(1), "clock-rate:rate=0").startswith("ERROR:4:")
        assert info(c.port(1), "clock-rate:rate=fast").startswith("ERROR:4:")
        assert info(c.port(1), "clock-rate:rate=1.5") == "1.5"
        assert info(c.port(1), "clock-rate:rate=1") == "1"
    except BaseException:
        print(c.logs())
        raise
    finally:
        c.stop_all()


def test_the_clock_is_not_for_production(cluster):
    assert info(cluster.port(1), "clock-rate") == "1"
    answer = info(cluster.port(1), "clock-rate:rate=0.5")
    assert answer.startswith("ERROR:22:fault injection is off"), answer
    assert info(cluster.port(1), "clock-rate") == "1"
