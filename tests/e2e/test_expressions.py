"""Filter expressions through the official Python client's `aerospike_helpers.expressions`
against a 3-node cluster: reads, writes, operate, deletes, scans and queries skip or refuse
(27 FILTERED_OUT) the records the filter rejects; metadata, arithmetic, let/cond and list/map
read expressions evaluate as Aerospike's."""

import time

import aerospike
import pytest
from aerospike import exception as ex
from aerospike import predicates as p
from aerospike_helpers import expressions as exp
from aerospike_helpers.operations import operations as op


NS, SET = "test", "exp"
SEND_KEY = {"key": aerospike.POLICY_KEY_SEND}


@pytest.fixture(scope="module")
def cluster(module_cluster):
    return module_cluster


@pytest.fixture(scope="module")
def client(cluster):
    c = cluster.client(seed=1)
    for i in range(20):
        c.put((NS, SET, i), {"v": i, "s": f"n{i % 3}", "l": list(range(i % 4)), "m": {"k": i}},
              policy=SEND_KEY)
    yield c
    c.close()


def f(e):
    return {"expressions": e.compile()}


def test_reads_are_filtered(client):
    assert client.get((NS, SET, 5), policy=f(exp.Eq(exp.IntBin("v"), 5)))[2]["v"] == 5
    with pytest.raises(ex.FilteredOut):
        client.get((NS, SET, 5), policy=f(exp.Eq(exp.IntBin("v"), 6)))
    # a missing bin is unknown: filtered out
    with pytest.raises(ex.FilteredOut):
        client.get((NS, SET, 5), policy=f(exp.Eq(exp.IntBin("nope"), 1)))
    assert client.get((NS, SET, 5), policy=f(exp.Or(
        exp.Eq(exp.IntBin("nope"), 1), exp.Eq(exp.StrBin("s"), "n2"))))[2]["v"] == 5


@pytest.mark.filterwarnings("ignore:CmpRegex:DeprecationWarning")
def test_regex_filters(client):
    icase = aerospike.REGEX_ICASE
    assert client.get((NS, SET, 5), policy=f(exp.CmpRegex(0, "^n[0-9]$", exp.StrBin("s"))))
    with pytest.raises(ex.FilteredOut):
        client.get((NS, SET, 5), policy=f(exp.CmpRegex(0, "^N", exp.StrBin("s"))))
    assert client.get((NS, SET, 5), policy=f(exp.CmpRegex(icase, "^N", exp.StrBin("s"))))
    q = client.query(NS, SET)
    got = sorted(r[2]["v"] for r in q.results(f(exp.CmpRegex(0, "1$", exp.StrBin("s")))))
    assert got == [i for i in range(20) if i % 3 == 1]
    with pytest.raises(ex.InvalidRequest):
        client.get((NS, SET, 5), policy=f(exp.CmpRegex(0, "a(", exp.StrBin("s"))))


def test_writes_and_deletes_are_filtered(client):
    key = (NS, SET, 7)
    with pytest.raises(ex.FilteredOut):
        client.put(key, {"v": 100}, policy=f(exp.GT(exp.IntBin("v"), 50)))
    assert client.get(key)[2]["v"] == 7
    client.put(key, {"w": 1}, policy=f(exp.LT(exp.IntBin("v"), 50)))
    assert client.get(key)[2]["w"] == 1
    with pytest.raises(ex.FilteredOut):
        client.operate(key, [op.increment("v", 1)], policy=f(exp.Eq(exp.IntBin("v"), 0)))
    with pytest.raises(ex.FilteredOut):
        client.remove(key, policy=f(exp.Eq(exp.IntBin("v"), 0)))
    client.remove(key, policy=f(exp.Eq(exp.IntBin("v"), 7)))
    with pytest.raises(ex.RecordNotFound):
        client.get(key)
    client.put(key, {"v": 7, "s": "n1", "l": [0, 1, 2], "m": {"k": 7}}, policy=SEND_KEY)


def test_metadata_arithmetic_let_cond_and_collections(client):
    key = (NS, SET, 9)
    passes = [
        exp.Eq(exp.SetName(), "exp"),
        exp.Eq(exp.KeyInt(), 9),
        exp.KeyExists(),
        exp.Eq(exp.TTL(), -1),
        exp.GT(exp.LastUpdateTime(), 1_600_000_000 * 10**9),
        exp.LT(exp.SinceUpdateTime(), 600_000),
        exp.Eq(exp.Add(exp.IntBin("v"), 1), 10),
        exp.Eq(exp.Mod(exp.IntBin("v"), 4), 1),
        exp.Let(exp.Def("x", exp.Mul(exp.IntBin("v"), 2)), exp.Eq(exp.Var("x"), 18)),
        exp.Eq(exp.Cond(exp.GT(exp.IntBin("v"), 5), 1, 0), 1),
        exp.Eq(exp.ListSize(None, exp.ListBin("l")), 1),
        exp.Eq(exp.MapGetByKey(None, aerospike.MAP_RETURN_VALUE, exp.ResultType.INTEGER, "k",
                               exp.MapBin("m")), 9),
        exp.GE(exp.BinType("v"), 1),
        exp.Eq(exp.DigestMod(1), 0),
    ]
    for e in passes:
        assert client.get(key, policy=f(e))[2]["v"] == 9, e
    with pytest.raises(ex.FilteredOut):
        client.get(key, policy=f(exp.Not(exp.KeyExists())))


def test_scans_and_queries_skip_rejected_records(client):
    q = client.query(NS, SET)
    got = sorted(r[2]["v"] for r in q.results(f(exp.Eq(exp.StrBin("s"), "n0"))))
    assert got == [i for i in range(20) if i % 3 == 0]
    client.index_integer_create(NS, SET, "v", "exp_v")
    q = client.query(NS, SET)
    q.where(p.between("v", 0, 10))
    got = sorted(r[2]["v"] for r in q.results(f(exp.Eq(exp.Mod(exp.IntBin("v"), 2), 0))))
    assert got == [0, 2, 4, 6, 8, 10]



def test_expression_read_and_write_operations(client):
    from aerospike_helpers.operations import expression_operations as eop

    key = (NS, SET, "expops")
    client.put(key, {"a": 10, "b": 3})
    double_a = exp.Mul(exp.IntBin("a"), 2).compile()
    # read: the value answered under the op's name, the record unchanged
    _, _, bins = client.operate(key, [eop.expression_read("twice", double_a)])
    assert bins["twice"] == 20
    # inside a write the expression sees what earlier ops of the same command did
    _, _, bins = client.operate(key, [
        op.increment("a", 5),
        eop.expression_write("c", exp.Add(exp.IntBin("a"), exp.IntBin("b")).compile()),
        op.read("c"),
    ])
    assert bins["c"] == 18
    assert client.get(key)[2] == {"a": 15, "b": 3, "c": 18}
    # create-only on an existing bin: 6, or skipped with policy-no-fail
    lit = exp.Val(1).compile()
    with pytest.raises(ex.BinExistsError):
        client.operate(key, [eop.expression_write("c", lit, aerospike.EXP_WRITE_CREATE_ONLY)])
    client.operate(key, [eop.expression_write(
        "c", lit, aerospike.EXP_WRITE_CREATE_ONLY | aerospike.EXP_WRITE_POLICY_NO_FAIL)])
    assert client.get(key)[2]["c"] == 18
    # update-only on a missing bin: 17
    with pytest.raises(ex.BinNotFound):
        client.operate(key, [eop.expression_write("zz", lit, aerospike.EXP_WRITE_UPDATE_ONLY)])
    # an expression with no value (missing bin): 26, or nothing with eval-no-fail
    missing = exp.IntBin("nope").compile()
    with pytest.raises(ex.OpNotApplicable):
        client.operate(key, [eop.expression_read("r", missing)])
    _, _, bins = client.operate(key, [eop.expression_read(
        "r", missing, aerospike.EXP_READ_EVAL_NO_FAIL)])
    assert bins["r"] is None
    with pytest.raises(ex.OpNotApplicable):
        client.operate(key, [eop.expression_write("d", missing)])
    client.operate(key, [eop.expression_write("d", missing, aerospike.EXP_WRITE_EVAL_NO_FAIL)])
    assert "d" not in client.get(key)[2]
    # nil deletes the bin only with allow-delete
    nil = exp.Val(None).compile()
    with pytest.raises(ex.OpNotApplicable):
        client.operate(key, [eop.expression_write("b", nil)])
    client.operate(key, [eop.expression_write("b", nil, aerospike.EXP_WRITE_ALLOW_DELETE)])
    assert client.get(key)[2] == {"a": 15, "c": 18}
    # read-only commands cannot carry expression writes: batch of reads with an exp read
    recs = client.batch_operate([key], [eop.expression_read("x", double_a)]).batch_records
    assert recs[0].result == 0 and recs[0].record[2]["x"] == 30


def test_bit_hll_and_modify_expressions(client):
    """Bit and HLL read expressions, list/map modify expressions on a local copy, and call
    arguments that are themselves expressions."""
    from aerospike_helpers.operations import expression_operations as eop
    from aerospike_helpers.operations import hll_operations as hll

    key = (NS, SET, "calls")
    client.put(key, {"b": bytearray([0xF0, 0x01]), "l": [1, 2, 3], "m": {"a": 1}, "x": 2})
    client.operate(key, [hll.hll_add("h", [f"e{i}" for i in range(50)], 8, 4)])

    # filters on bit and HLL reads
    assert client.get(key, policy=f(exp.Eq(exp.BitCount(0, 16, exp.BlobBin("b")), 5)))
    with pytest.raises(ex.FilteredOut):
        client.get(key, policy=f(exp.Eq(exp.BitGetInt(0, 8, False, exp.BlobBin("b")), 1)))
    assert client.get(key, policy=f(exp.GT(exp.HLLGetCount(exp.HLLBin("h")), 40)))
    assert client.get(key, policy=f(exp.Eq(exp.HLLMayContain(["e1", "e2"], exp.HLLBin("h")), 1)))
    with pytest.raises(ex.FilteredOut):
        client.get(key, policy=f(exp.Eq(exp.HLLMayContain(["zz"], exp.HLLBin("h")), 1)))

    # modify expressions work on a copy: the result is the changed value, the bin unchanged
    appended = exp.ListAppend(None, None, exp.IntBin("x"), exp.ListBin("l")).compile()
    grown = exp.BitResize(None, 4, aerospike.BIT_RESIZE_DEFAULT, exp.BlobBin("b")).compile()
    added = exp.HLLGetCount(
        exp.HLLAdd(None, [f"n{i}" for i in range(50)], -1, -1, exp.HLLBin("h"))).compile()
    put = exp.MapPut(None, None, "b", 2, exp.MapBin("m")).compile()
    _, _, bins = client.operate(key, [
        eop.expression_read("appended", appended),
        eop.expression_read("grown", grown),
        eop.expression_read("added", added),
        eop.expression_read("put", put),
    ])
    assert bins["appended"] == [1, 2, 3, 2]
    assert bytes(bins["grown"]) == bytes([0xF0, 0x01, 0, 0])
    assert 80 < bins["added"] <= 120
    assert bins["put"] == {"a": 1, "b": 2}
    rec = client.get(key)[2]
    assert rec["l"] == [1, 2, 3] and bytes(rec["b"]) == bytes([0xF0, 0x01])
    # written back through an expression write
    client.operate(key, [eop.expression_write("l", appended)])
    assert client.get(key)[2]["l"] == [1, 2, 3, 2]
    # a call argument read from another bin
    by_value = exp.ListGetByValue(None, aerospike.LIST_RETURN_COUNT, exp.IntBin("x"),
                                  exp.ListBin("l")).compile()
    assert client.operate(key, [eop.expression_read("n", by_value)])[2]["n"] == 2


def test_geo_comparisons(client):
    key = (NS, SET, "geo")
    point = aerospike.GeoJSON({"type": "Point", "coordinates": [-122.0, 37.5]})
    circle = aerospike.GeoJSON({"type": "AeroCircle", "coordinates": [[-122.0, 37.5], 1000]})
    client.put(key, {"loc": point, "area": circle, "v": -1})
    bay = aerospike.GeoJSON({"type": "Polygon", "coordinates": [
        [[-122.5, 37.0], [-121.5, 37.0], [-121.5, 38.0], [-122.5, 38.0], [-122.5, 37.0]]]})
    far = aerospike.GeoJSON({"type": "Polygon", "coordinates": [
        [[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]]})
    assert client.get(key, policy=f(exp.CmpGeo(exp.GeoBin("loc"), bay)))[2]["v"] == -1
    with pytest.raises(ex.FilteredOut):
        client.get(key, policy=f(exp.CmpGeo(exp.GeoBin("loc"), far)))
    # A region bin contains a point: about 440 m from the centre, then about 1.3 km.
    near = aerospike.GeoJSON({"type": "Point", "coordinates": [-122.005, 37.5]})
    out = aerospike.GeoJSON({"type": "Point", "coordinates": [-122.015, 37.5]})
    assert client.get(key, policy=f(exp.CmpGeo(exp.GeoBin("area"), near)))
    with pytest.raises(ex.FilteredOut):
        client.get(key, policy=f(exp.CmpGeo(exp.GeoBin("area"), out)))
    # A bin that is not GeoJSON is unknown: filtered out; so are the scan's other records.
    with pytest.raises(ex.FilteredOut):
        client.get(key, policy=f(exp.CmpGeo(exp.GeoBin("v"), bay)))
    got = [r[2]["v"] for r in client.query(NS, SET).results(f(exp.CmpGeo(exp.GeoBin("loc"), bay)))]
    assert got == [-1]


def test_touch_void_time_digest_and_batch_row_filters(client):
    from aerospike_helpers.batch import records as br

    key = (NS, SET, 11)
    with pytest.raises(ex.FilteredOut):
        client.touch(key, 1000, policy=f(exp.Eq(exp.IntBin("v"), 0)))
    client.touch(key, 1000, policy=f(exp.Eq(exp.IntBin("v"), 11)))
    now_ns = time.time_ns()
    for e in [
        exp.GT(exp.VoidTime(), now_ns + 900 * 10**9),
        exp.LT(exp.VoidTime(), now_ns + 1100 * 10**9),
        exp.GT(exp.TTL(), 900),
    ]:
        assert client.get(key, policy=f(e))[2]["v"] == 11, e
    # The digest's bytes 8..12 as a little-endian integer, modulo 3.
    digest = aerospike.calc_digest(NS, SET, 11)
    mod = int.from_bytes(digest[8:12], "little") % 3
    assert client.get(key, policy=f(exp.Eq(exp.DigestMod(3), mod)))
    with pytest.raises(ex.FilteredOut):
        client.get(key, policy=f(exp.Eq(exp.DigestMod(3), (mod + 1) % 3)))
    # Each batch row with a filter of its own.
    rows = [
        br.Read((NS, SET, i), None, read_all_bins=True,
                policy={"expressions": exp.Eq(exp.IntBin("v"), i if i % 2 else -1).compile()})
        for i in range(12, 16)
    ]
    done = client.batch_write(br.BatchRecords(rows)).batch_records
    assert [r.result for r in done] == [27, 0, 27, 0]
    assert [r.record[2]["v"] for r in done if r.result == 0] == [13, 15]


def test_a_filter_that_is_not_a_boolean_is_refused(client):
    with pytest.raises(ex.InvalidRequest):
        client.get((NS, SET, 5), policy=f(exp.IntBin("v")))
    with pytest.raises(ex.AerospikeError) as refused:
        client.query(NS, SET).results(f(exp.IntBin("v")))
    assert refused.value.code == 4
