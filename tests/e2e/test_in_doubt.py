"""A write the server cannot decide is reported in doubt, never as a definite failure."""

import base64
import signal

import aerospike
import pytest
from aerospike import exception as ex

from cluster import Cluster, info

NS, SET = "test", "doubt"


def partition_of(client, key):
    d = aerospike.calc_digest(NS, SET, key)
    return (d[0] | (d[1] << 8)) & 4095


def masters(port):
    ns = info(port, "replicas-leaders").split(";")[0]
    return base64.b64decode(ns.split(":", 1)[1].split(",")[2])


def test_write_without_quorum_is_in_doubt(tmp_path):
    # The server gives up after 1 s, well before the client's 5 s timeout, so the answer is
    # the server's own verdict: result code 9 with the in-doubt flag.
    c = Cluster(tmp_path, extra_args=["--request-timeout-ms", "1000"])
    c.start_all()
    try:
        client = c.client(seed=1, total_timeout=5000, socket_timeout=5000)
        bitmap = masters(c.port(1))
        key = next(k for k in range(10000)
                   if bitmap[partition_of(client, k) >> 3] & (0x80 >> (partition_of(client, k) & 7)))
        client.put((NS, SET, key), {"v": 1})
        # Node 1 still leads the key's group but can no longer reach a quorum.
        for i in (2, 3):
            c.procs[i].send_signal(signal.SIGSTOP)
        with pytest.raises(ex.AerospikeError) as e:
            client.put((NS, SET, key), {"v": 2})
        assert e.value.code == 9, e.value
        assert e.value.in_doubt, "a write that may have been applied must be reported in doubt"
        for i in (2, 3):
            c.procs[i].send_signal(signal.SIGCONT)
        c.wait_ready()
        # Whatever happened to the in-doubt write, the record is readable and consistent.
        _, _, bins = client.get((NS, SET, key))
        assert bins["v"] in (1, 2)
        client.close()
    finally:
        for p in c.procs.values():
            p.send_signal(signal.SIGCONT)
        c.stop_all()
