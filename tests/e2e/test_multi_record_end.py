"""Scans and queries this server refuses (geospatial queries, background operations) must end
their answer stream at once: the reply carries INFO3_LAST, so the client raises immediately
instead of waiting for more messages until its timeout."""

import time

import pytest
from aerospike import exception as ex
from aerospike_helpers.operations import operations as op

NS, SET = "test", "multi"


@pytest.fixture
def client(cluster):
    c = cluster.client(seed=1, total_timeout=6000)
    yield c
    c.close()


def test_a_refused_query_ends_the_stream(client):
    from aerospike import predicates as p
    client.put((NS, SET, 1), {"v": 1})
    q = client.query(NS, SET)
    q.where(p.geo_within_radius("loc", 0.0, 0.0, 10.0))
    started = time.monotonic()
    with pytest.raises(ex.AerospikeError) as e:
        q.results()
    assert e.value.code == 16, e.value
    assert time.monotonic() - started < 3.0, "the client waited for more scan messages"


def test_a_background_query_is_refused_not_ignored(client):
    client.put((NS, SET, 1), {"v": 1})
    q = client.query(NS, SET)
    q.add_ops([op.write("w", 1)])
    with pytest.raises(ex.AerospikeError) as e:
        job = q.execute_background()
        client.job_info(job, 1)  # noqa: the job must not report a silent success
    assert e.value.code == 16, e.value
    assert "w" not in client.get((NS, SET, 1))[2]
