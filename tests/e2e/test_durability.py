"""Acknowledged writes survive kill -9 of a leader, a restart, and a full-cluster restart."""

import threading
import time

import aerospike
from aerospike import exception as ex

from cluster import wait_until

NS, SET = "test", "durable"
RECORDS = 1000


class Ledger:
    """What the cluster acknowledged, per key: the highest acked version and the highest tried."""

    def __init__(self):
        self.lock = threading.Lock()
        self.acked = {}
        self.tried = {}

    def attempt(self, k, v):
        with self.lock:
            self.tried[k] = max(self.tried.get(k, 0), v)

    def ack(self, k, v):
        with self.lock:
            self.acked[k] = max(self.acked.get(k, 0), v)


def put(client, ledger, k, v):
    ledger.attempt(k, v)
    try:
        client.put((NS, SET, k), {"v": v, "k": k})
        ledger.ack(k, v)
        return True
    except ex.AerospikeError:
        # Failed or in doubt: not acknowledged, so nothing to check but the upper bound.
        return False


def writer(client, ledger, stop, counts):
    v = 1_000_000
    while not stop.is_set():
        for k in range(0, RECORDS, 7):
            if stop.is_set():
                break
            v += 1
            if put(client, ledger, k, v):
                counts["ok"] += 1
            else:
                counts["failed"] += 1


def check_all(cluster, ledger, seed):
    client = cluster.client(seed=seed)
    try:
        missing, wrong = [], []
        for k in range(RECORDS):
            want = ledger.acked.get(k)
            if want is None:
                continue
            try:
                _, meta, bins = client.get((NS, SET, k))
            except ex.RecordNotFound:
                missing.append(k)
                continue
            got = bins["v"]
            # The last acked value, or a later write whose outcome was in doubt.
            if not (want <= got <= ledger.tried[k]):
                wrong.append((k, want, got, ledger.tried[k]))
        assert not missing, f"acknowledged records missing through node {seed}: {missing[:20]}"
        assert not wrong, f"records with stale values through node {seed}: {wrong[:20]}"
    finally:
        client.close()


def test_acknowledged_writes_survive_kill_restart_and_full_restart(cluster):
    ledger = Ledger()
    client = cluster.client(seed=1)
    for k in range(RECORDS):
        assert put(client, ledger, k, 1), f"initial write {k} failed"

    victim = next(i for i in (2, 3, 1) if cluster.leads_some(i))
    stop = threading.Event()
    counts = {"ok": 0, "failed": 0}
    seed = 1 if victim != 1 else 2
    bg_client = cluster.client(seed=seed)
    t = threading.Thread(target=writer, args=(bg_client, ledger, stop, counts))
    t.start()
    try:
        wait_until("writes before the kill", lambda: counts["ok"] > 200, timeout=30)
        cluster.kill(victim)
        before = counts["ok"]
        # Writes continue: the survivors elect new leaders for the victim's groups.
        wait_until("writes after the kill", lambda: counts["ok"] > before + 300, timeout=60)
        cluster.start(victim)
        cluster.wait_ready()
        after = counts["ok"]
        wait_until("writes after the restart", lambda: counts["ok"] > after + 200, timeout=60)
    finally:
        stop.set()
        t.join(timeout=60)
        bg_client.close()
        client.close()
    assert counts["ok"] > 0
    print(f"killed node {victim}; background writes ok={counts['ok']} failed={counts['failed']}")

    for seed in (1, 2, 3):
        check_all(cluster, ledger, seed)

    # Durability: every node killed at once, then restarted on the same data.
    cluster.stop_all()
    cluster.start_all()
    for seed in (1, 2, 3):
        check_all(cluster, ledger, seed)
