"""Multi-record commands this server does not serve yet (scan, query) must end their
answer stream at once: the reply carries INFO3_LAST, so the client raises immediately instead of
waiting for more messages until its timeout."""

import time

import pytest
from aerospike import exception as ex

NS, SET = "test", "multi"


@pytest.fixture
def client(cluster):
    c = cluster.client(seed=1, total_timeout=6000)
    yield c
    c.close()


def test_scan_error_ends_the_stream(client):
    started = time.monotonic()
    with pytest.raises(ex.AerospikeError) as e:
        client.scan(NS, SET).results()
    assert e.value.code != 9, f"timed out instead of an answer: {e.value}"
    assert time.monotonic() - started < 3.0, "the client waited for more scan messages"
