"""Scans and secondary-index queries through the official Python client against a 3-node
cluster: whole-set and partition scans, bin selection, no bins, pagination with max_records,
records_per_second; integer, string, list and map indexes queried by equality, range and
contains against a Python-side model after randomized writes, updates and deletes; an index
built over existing records while writes continue; the info commands and their errors; all
of it again after kill -9 and restart of a node."""

import random
import threading
import time

import aerospike
import pytest
from aerospike import exception as ex
from aerospike import predicates as p
from aerospike_helpers.batch import records as br
from aerospike_helpers.operations import operations as op

from cluster import Cluster, info, wait_until

NS = "test"
SEND_KEY = {"key": aerospike.POLICY_KEY_SEND}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("scanquery"))
    c.start_all()
    yield c
    c.stop_all()


@pytest.fixture(scope="module")
def client(cluster):
    c = cluster.client(seed=1, total_timeout=10000)
    yield c
    c.close()


def user_keys(records):
    return sorted(r[0][2] for r in records)


def load_pct(cluster, name):
    """The least `load_pct` any live node reports for index `name`."""
    least = 100
    for i in cluster.live():
        answer = info(cluster.port(i), f"sindex/{NS}/{name}")
        figures = dict(kv.split("=", 1) for kv in answer.split(";"))
        least = min(least, int(figures["load_pct"]))
    return least


@pytest.fixture(scope="module")
def scanned(client):
    """300 records in set `s1` (keys stored), 50 in `s2`."""
    for i in range(300):
        client.put((NS, "s1", i), {"a": i, "b": f"x{i % 5}"}, policy=SEND_KEY)
    for i in range(50):
        client.put((NS, "s2", i), {"a": i}, policy=SEND_KEY)
    return 300


def test_scan_a_set_with_bins_and_without(client, scanned):
    records = client.query(NS, "s1").results()
    assert user_keys(records) == list(range(scanned))
    assert all(r[2] == {"a": r[0][2], "b": f"x{r[0][2] % 5}"} for r in records)
    assert all(r[1]["gen"] == 1 for r in records)
    q = client.query(NS, "s1")
    q.select("a")
    assert all(r[2] == {"a": r[0][2]} for r in q.results())
    heads = client.query(NS, "s1").results(options={"nobins": True})
    assert len(heads) == scanned and all(not r[2] for r in heads)
    assert user_keys(client.query(NS, "s2").results()) == list(range(50))
    assert client.query(NS, "no-such-set").results() == []
    # The whole namespace: every set (and the cluster's warm-up records).
    assert len(client.query(NS, None).results()) >= scanned + 50


def test_partition_scans_split_the_set(client, scanned):
    low = client.query(NS, "s1").results({"partition_filter": {"begin": 0, "count": 2048}})
    high = client.query(NS, "s1").results({"partition_filter": {"begin": 2048, "count": 2048}})
    assert 0 < len(low) < scanned
    assert sorted(user_keys(low) + user_keys(high)) == list(range(scanned))


def test_pages_of_max_records_cover_the_set_once(client, scanned):
    q = client.query(NS, "s1")
    q.max_records = 40
    q.paginate()
    seen, pages = [], 0
    while not q.is_done() and pages < 100:
        page = q.results()
        assert len(page) <= 40
        seen += user_keys(page)
        pages += 1
    assert sorted(seen) == list(range(scanned))
    assert pages >= scanned // 40


def test_records_per_second_throttles_the_stream(client, scanned):
    q = client.query(NS, "s1")
    q.records_per_second = 100
    started = time.monotonic()
    assert len(q.results()) == scanned
    # Each node streams its ~100 records at 100 per second.
    assert time.monotonic() - started >= 0.5


def test_scans_of_an_unknown_namespace_fail(client):
    with pytest.raises(ex.AerospikeError):
        client.query("nope", "s1").results()


class Model:
    """What the indexed bins of set `people` hold, key by key."""

    def __init__(self):
        self.records = {}

    def matches(self, pred):
        return sorted(k for k, r in self.records.items() if pred(r))


def random_record(rng):
    rec = {"age": rng.randrange(0, 30), "name": rng.choice(["ann", "bob", "cy", "dee"])}
    if rng.random() < 0.8:
        rec["tags"] = rng.sample(["red", "green", "blue", "gold"], rng.randrange(0, 4))
    if rng.random() < 0.8:
        rec["attrs"] = {rng.choice(["k1", "k2", "k3"]): rng.randrange(0, 5) for _ in range(2)}
    return rec


@pytest.fixture(scope="module")
def people(client, cluster):
    for name, call in [
        ("age_ix", lambda: client.index_integer_create(NS, "people", "age", "age_ix")),
        ("name_ix", lambda: client.index_string_create(NS, "people", "name", "name_ix")),
        ("tags_ix", lambda: client.index_list_create(
            NS, "people", "tags", aerospike.INDEX_STRING, "tags_ix")),
        ("attr_keys_ix", lambda: client.index_map_keys_create(
            NS, "people", "attrs", aerospike.INDEX_STRING, "attr_keys_ix")),
        ("attr_values_ix", lambda: client.index_map_values_create(
            NS, "people", "attrs", aerospike.INDEX_NUMERIC, "attr_values_ix")),
    ]:
        call()
        assert load_pct(cluster, name) == 100
    rng = random.Random(7)
    model = Model()
    for _ in range(600):
        k = rng.randrange(120)
        roll = rng.random()
        if roll < 0.6:
            rec = random_record(rng)
            client.put((NS, "people", k), rec, policy=SEND_KEY)
            # A put merges bins: the ones it does not name keep their values.
            merged = dict(model.records.get(k, {}))
            merged.update(rec)
            model.records[k] = merged
        elif roll < 0.8 and k in model.records:
            age = rng.randrange(0, 30)
            client.put((NS, "people", k), {"age": age}, policy=SEND_KEY)
            model.records[k]["age"] = age
        elif k in model.records:
            client.remove((NS, "people", k))
            del model.records[k]
    return model


def query(client, predicate, set_name="people", index_name=None):
    q = client.query(NS, set_name)
    if index_name:
        q.where_with_index_name(index_name, predicate)
    else:
        q.where(predicate)
    return user_keys(q.results())


def check_queries(client, model):
    for age in range(0, 30, 3):
        assert query(client, p.equals("age", age)) == model.matches(lambda r: r.get("age") == age)
    for lo, hi in [(0, 5), (10, 20), (25, 100), (-5, -1)]:
        assert query(client, p.between("age", lo, hi)) == model.matches(
            lambda r: lo <= r.get("age", -1000) <= hi)
    for name in ["ann", "cy", "zed"]:
        assert query(client, p.equals("name", name)) == model.matches(
            lambda r: r.get("name") == name)
    for tag in ["red", "gold"]:
        assert query(client, p.contains("tags", aerospike.INDEX_TYPE_LIST, tag)) == model.matches(
            lambda r: tag in r.get("tags", []))
    assert query(client, p.contains("attrs", aerospike.INDEX_TYPE_MAPKEYS, "k2")) == model.matches(
        lambda r: "k2" in r.get("attrs", {}))
    assert query(client, p.contains("attrs", aerospike.INDEX_TYPE_MAPVALUES, 3)) == model.matches(
        lambda r: 3 in r.get("attrs", {}).values())
    assert query(client, p.range("attrs", aerospike.INDEX_TYPE_MAPVALUES, 1, 2)) == model.matches(
        lambda r: any(1 <= v <= 2 for v in r.get("attrs", {}).values()))
    # Named index, and a query returning the matching records' bins.
    assert query(client, p.equals("age", 4), index_name="age_ix") == model.matches(
        lambda r: r.get("age") == 4)
    q = client.query(NS, "people")
    q.where(p.between("age", 0, 100))
    assert all(r[2] == model.records[r[0][2]] for r in q.results())


def test_queries_match_the_model(client, people):
    check_queries(client, people)


def test_query_pages_cover_every_match_once(client, people):
    q = client.query(NS, "people")
    q.where(p.between("age", 0, 100))
    q.max_records = 7
    q.paginate()
    seen, pages = [], 0
    while not q.is_done() and pages < 200:
        seen += user_keys(q.results())
        pages += 1
    assert sorted(seen) == people.matches(lambda r: "age" in r)


def test_index_commands_and_errors(client, cluster, people):
    port = cluster.port(2)
    assert info(port, "index-integer-create test s1 a") == "ok"
    assert info(port, "index-string-create test s1 b") == "ok"
    wait_until("seed indexes built", lambda: load_pct(cluster, "s1_a_int") == 100
               and load_pct(cluster, "s1_b_str") == 100)
    shown = info(port, "show-indexes test s1")
    assert "indexname=s1_a_int" in shown and "indexname=s1_b_str" in shown
    assert "indexname=age_ix" not in shown
    assert "indexname=age_ix:set=people:bin=age:type=numeric:indextype=default" in info(
        port, "sindex-list:ns=test")
    assert query(client, p.equals("a", 17), set_name="s1") == [17]
    assert query(client, p.equals("b", "x4"), set_name="s1") == list(range(4, 300, 5))
    # Same name, another definition: 200. Same definition, same name: ok again.
    assert info(port, "sindex-create:ns=test;set=s1;indexname=s1_a_int;indexdata=b,STRING").startswith(
        "ERROR:200:")
    with pytest.raises(ex.IndexFoundError):
        client.index_string_create(NS, "s1", "other", "s1_a_int")
    assert info(port, "sindex-create:ns=test;set=s1;indexname=s1_a_int;indexdata=a,NUMERIC") == "ok"
    assert info(port, "sindex-create:ns=nope;indexname=x;indexdata=a,NUMERIC").startswith("ERROR:20:")
    assert info(port, "sindex/test/missing").startswith("ERROR:201:")
    assert info(port, "sindex-exists:ns=test;indexname=s1_a_int") == "true"
    # No index on the bin: 201, never a silent scan.
    with pytest.raises(ex.IndexNotFound):
        query(client, p.equals("unindexed", 1), set_name="s1")
    assert info(port, "index-integer-remove test s1 a") == "ok"
    assert info(port, "sindex-delete:ns=test;indexname=s1_b_str") == "ok"
    assert info(port, "sindex-delete:ns=test;indexname=s1_b_str") == "ok"
    assert "s1_a_int" not in info(port, "sindex") and "s1_b_str" not in info(port, "sindex")
    with pytest.raises(ex.IndexNotFound):
        query(client, p.equals("a", 17), set_name="s1")


def test_an_index_built_over_existing_records_while_writes_continue(client, cluster):
    n = 100_000
    batch = 2000
    for start in range(0, n, batch):
        rows = [br.Write((NS, "bulk", i), [op.write("v", i % 1000)], policy=SEND_KEY)
                for i in range(start, start + batch)]
        result = client.batch_write(br.BatchRecords(rows))
        assert all(r.result == 0 for r in result.batch_records)
    expected = {i: i % 1000 for i in range(n)}
    stop = threading.Event()
    errors = []
    lock = threading.Lock()

    def writer():
        rng = random.Random(3)
        w = cluster.client(seed=3, total_timeout=10000)
        try:
            while not stop.is_set():
                k = rng.randrange(n)
                v = 1000 + rng.randrange(100)
                w.put((NS, "bulk", k), {"v": v}, policy=SEND_KEY)
                with lock:
                    expected[k] = v
        except Exception as e:  # noqa: BLE001 - reported by the test
            errors.append(e)
        finally:
            w.close()

    t = threading.Thread(target=writer)
    t.start()
    try:
        seen_building = []
        info(cluster.port(1), "sindex-create:ns=test;set=bulk;indexname=bulk_v;indexdata=v,NUMERIC")

        def built():
            pct = load_pct(cluster, "bulk_v")
            seen_building.append(pct)
            return pct == 100
        wait_until("index over 100,000 records built", built, timeout=120, interval=0.05)
    finally:
        stop.set()
        t.join()
    assert not errors
    assert min(seen_building) < 100, "the build was observed in progress"
    for v in [0, 999, 1000, 1050]:
        assert query(client, p.equals("v", v), set_name="bulk") == sorted(
            k for k, x in expected.items() if x == v)
    total = client.query(NS, "bulk")
    total.where(p.between("v", 0, 2000))
    assert len(total.results(options={"nobins": True})) == n


def test_everything_after_kill_and_restart(client, cluster, people):
    cluster.kill(2)
    # Once the groups node 2 led have elected new leaders, every query is whole again.
    cluster.wait_ready()
    check_queries(client, people)
    cluster.start(2)
    cluster.wait_ready()
    wait_until("restarted node rebuilt its indexes", lambda: load_pct(cluster, "age_ix") == 100)
    # The restarted node takes back the groups it prefers to lead within a few seconds; a
    # query that meets such a handover finds those partitions unavailable on the old leader
    # and retries them once the client's partition map has moved (it refreshes every second),
    # as an Aerospike client does during migrations.
    fresh = cluster.client(
        seed=2,
        total_timeout=10000,
        query={"total_timeout": 10000, "max_retries": 10, "sleep_between_retries": 500},
    )
    try:
        check_queries(fresh, people)
        records = fresh.query(NS, "s1").results()
        assert user_keys(records) == list(range(300))
    finally:
        fresh.close()
