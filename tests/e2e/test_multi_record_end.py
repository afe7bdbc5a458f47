"""Multi-record commands this server does not serve yet (batch, scan, query) must end their
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


def test_batch_error_ends_the_stream(client):
    keys = [(NS, SET, i) for i in range(5)]
    for k in keys:
        client.put(k, {"v": 1})
    started = time.monotonic()
    try:
        rows = client.batch_read(keys)
        # The client reports per-row results; a node holding a single key of the batch gets
        # a plain read (answered), the others the batch's error.
        codes = [r.result for r in rows.batch_records]
        assert any(c != 0 for c in codes), codes
        assert 9 not in codes, f"rows timed out: {codes}"
    except ex.AerospikeError as e:
        assert e.code != 9, f"timed out instead of an answer: {e}"
    assert time.monotonic() - started < 3.0, "the client waited for more batch messages"


def test_scan_error_ends_the_stream(client):
    started = time.monotonic()
    with pytest.raises(ex.AerospikeError) as e:
        client.scan(NS, SET).results()
    assert e.value.code != 9, f"timed out instead of an answer: {e.value}"
    assert time.monotonic() - started < 3.0, "the client waited for more scan messages"
