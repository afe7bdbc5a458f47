"""Bitwise operations on blob bins and HyperLogLog bins through the official Python client's
`aerospike_helpers.operations.bitwise_operations` and `hll_operations`, against a 3-node
cluster: every modify and read operation, the write flags, overflow actions and folding, and
Aerospike's error codes."""

import aerospike
import pytest
from aerospike import exception as ex
from aerospike_helpers import HyperLogLog
from aerospike_helpers.operations import bitwise_operations as bit
from aerospike_helpers.operations import hll_operations as hll
from aerospike_helpers.operations import operations as op


NS, SET = "test", "bits"
# The builders still take the (deprecated) value_byte_size argument positionally.
pytestmark = pytest.mark.filterwarnings("ignore:value_byte_size:DeprecationWarning")


def blob(client, key, name="b"):
    return bytes(client.get(key)[2][name])


def test_modify_ops_change_the_blob_in_place(client):
    key = (NS, SET, "modify")
    client.put(key, {"b": bytearray([0x01, 0x42, 0x03, 0x04, 0x05])})
    client.operate(key, [
        bit.bit_set("b", 8, 8, 1, bytearray([0xFF])),
        bit.bit_or("b", 0, 8, 1, bytearray([0x80])),
        bit.bit_not("b", 16, 8),
        bit.bit_lshift("b", 24, 8, 3),
        bit.bit_add("b", 32, 8, 250, False, aerospike.BIT_OVERFLOW_FAIL),
    ])
    assert blob(client, key) == bytes([0x81, 0xFF, 0xFC, 0x20, 0xFF])

    client.operate(key, [
        bit.bit_xor("b", 0, 8, 1, bytearray([0xFF])),
        bit.bit_and("b", 8, 8, 1, bytearray([0x0F])),
        bit.bit_rshift("b", 16, 8, 2),
        bit.bit_subtract("b", 24, 8, 0x21, False, aerospike.BIT_OVERFLOW_WRAP),
        bit.bit_set_int("b", 32, 8, 0x7A),
    ])
    assert blob(client, key) == bytes([0x7E, 0x0F, 0x3F, 0xFF, 0x7A])

    client.operate(key, [
        bit.bit_insert("b", 1, 2, bytearray([0xAA, 0xBB])),
        bit.bit_remove("b", 0, 1),
        bit.bit_resize("b", 8),
    ])
    assert blob(client, key) == bytes([0xAA, 0xBB, 0x0F, 0x3F, 0xFF, 0x7A, 0, 0])
    client.operate(key, [bit.bit_resize("b", 2, resize_flags=aerospike.BIT_RESIZE_FROM_FRONT)])
    assert blob(client, key) == bytes([0, 0])


def test_read_ops_answer_in_order(client):
    key = (NS, SET, "read")
    client.put(key, {"b": bytearray([0x81, 0xFF, 0xFC, 0x20, 0xFF])})
    _, _, out = client.operate_ordered(key, [
        bit.bit_get("b", 0, 16),
        bit.bit_count("b", 0, 40),
        bit.bit_lscan("b", 16, 8, False),
        bit.bit_rscan("b", 16, 8, True),
        bit.bit_get_int("b", 0, 8, True),
        bit.bit_get_int("b", 0, 8, False),
        bit.bit_get("b", 9, 5),
        bit.bit_lscan("b", 24, 8, False),
    ])
    assert [v for _, v in out] == [
        bytearray([0x81, 0xFF]), 25, 6, 5, -127, 129, bytearray([0xF8]), 0]
    # a missing bin reads as nil
    _, _, out = client.operate_ordered(key, [bit.bit_count("nope", 0, 8)])
    assert out[0][1] is None


def test_flags_and_overflow_actions(client):
    key = (NS, SET, "flags")
    client.put(key, {"i": 1})
    create_only = {"bit_write_flags": aerospike.BIT_WRITE_CREATE_ONLY}
    update_only = {"bit_write_flags": aerospike.BIT_WRITE_UPDATE_ONLY}
    no_fail = {"bit_write_flags": aerospike.BIT_WRITE_UPDATE_ONLY | aerospike.BIT_WRITE_NO_FAIL}
    partial = {"bit_write_flags": aerospike.BIT_WRITE_PARTIAL}

    # resize creates a missing bin; create-only refuses an existing one
    client.operate(key, [bit.bit_resize("b", 2, policy=create_only)])
    assert blob(client, key) == bytes([0, 0])
    with pytest.raises(ex.BinExistsError):
        client.operate(key, [bit.bit_resize("b", 4, policy=create_only)])
    # update-only refuses a missing bin, unless no-fail skips the op
    with pytest.raises(ex.BinNotFound):
        client.operate(key, [bit.bit_resize("c", 4, policy=update_only)])
    client.operate(key, [bit.bit_resize("c", 4, policy=no_fail), op.write("d", 1)])
    rec = client.get(key)[2]
    assert "c" not in rec and rec["d"] == 1

    # a window past the end: 26, or cut at the end with partial
    with pytest.raises(ex.OpNotApplicable):
        client.operate(key, [bit.bit_set("b", 8, 16, 2, bytearray([0xFF, 0xFF]))])
    client.operate(key, [bit.bit_set("b", 8, 16, 2, bytearray([0xFF, 0xFF]), policy=partial)])
    assert blob(client, key) == bytes([0, 0xFF])

    # overflow: fail (26), saturate, wrap; signed arithmetic
    client.put(key, {"b": bytearray([0xFE, 0x7F])})
    with pytest.raises(ex.OpNotApplicable):
        client.operate(key, [bit.bit_add("b", 0, 8, 5, False, aerospike.BIT_OVERFLOW_FAIL)])
    client.operate(key, [
        bit.bit_add("b", 0, 8, 5, False, aerospike.BIT_OVERFLOW_SATURATE),
        bit.bit_add("b", 8, 8, 1, True, aerospike.BIT_OVERFLOW_WRAP),
    ])
    assert blob(client, key) == bytes([0xFF, 0x80])
    client.operate(key, [bit.bit_subtract("b", 8, 8, 1, True, aerospike.BIT_OVERFLOW_SATURATE)])
    assert blob(client, key) == bytes([0xFF, 0x80])


def test_errors(client):
    key = (NS, SET, "errors")
    client.put(key, {"i": 7, "b": bytearray([1, 2])})
    # a bit op on an integer bin
    with pytest.raises(ex.BinIncompatibleType):
        client.operate(key, [bit.bit_count("i", 0, 8)])
    with pytest.raises(ex.BinIncompatibleType):
        client.operate(key, [bit.bit_not("i", 0, 8)])
    # reads past the end, integers wider than 64 bits
    with pytest.raises(ex.OpNotApplicable):
        client.operate(key, [bit.bit_get("b", 16, 8)])
    with pytest.raises(ex.InvalidRequest):
        client.operate(key, [bit.bit_get_int("b", 0, 65, False)])
    # a failed op leaves the record as it was
    with pytest.raises(ex.OpNotApplicable):
        client.operate(key, [bit.bit_not("b", 0, 8), bit.bit_not("b", 8, 16)])
    assert blob(client, key) == bytes([1, 2])


def within(estimate, expected, index_bits):
    """Inside six standard errors of an HLL with `index_bits`."""
    return abs(estimate - expected) <= 6 * 1.04 / (2 ** index_bits) ** 0.5 * expected + 1


def test_hll_add_count_describe_and_union(client):
    key = (NS, SET, "hll")
    client.put(key, {"other": 1})
    names = [f"user{i}" for i in range(5000)]
    _, _, out = client.operate_ordered(key, [
        hll.hll_init("h", 12, 8),
        hll.hll_add("h", names),
        hll.hll_get_count("h"),
        hll.hll_refresh_count("h"),
        hll.hll_describe("h"),
        hll.hll_add("h", names[:100]),
    ])
    values = [v for _, v in out]
    assert values[0] is None
    assert 0 < values[1] <= 5000
    assert within(values[2], 5000, 12) and values[3] == values[2]
    assert values[4] == [12, 8]
    assert values[5] == 0  # nothing new
    stored = client.get(key)[2]["h"]
    assert isinstance(stored, HyperLogLog)
    assert len(stored) == 11 + (2 ** 12 * (6 + 8) + 7) // 8

    # a second sketch overlapping half; union and union count; writing a sketch back
    key2 = (NS, SET, "hll2")
    more = [f"user{i}" for i in range(2500, 7500)]
    client.operate(key2, [hll.hll_add("h", more, 12, 8)])
    other = client.get(key2)[2]["h"]
    _, _, out = client.operate_ordered(key, [
        hll.hll_get_union_count("h", [other]),
        hll.hll_get_union("h", [other]),
        hll.hll_get_similarity("h", [other]),
        hll.hll_get_intersect_count("h", [other]),
    ])
    union_count, union, similarity, intersect = [v for _, v in out]
    assert within(union_count, 7500, 12)
    assert isinstance(union, HyperLogLog)
    assert abs(similarity - 2500 / 7500) < 0.1
    assert abs(intersect - 2500) < 750
    client.put((NS, SET, "hll3"), {"u": union})
    assert client.operate((NS, SET, "hll3"), [hll.hll_get_count("u")])[2]["u"] == union_count

    # set-union into a missing bin creates it; fold halves the index bits
    client.operate(key2, [hll.hll_set_union("s", [stored, other])])
    assert client.operate(key2, [hll.hll_get_count("s")])[2]["s"] == union_count
    _, _, out = client.operate_ordered((NS, SET, "hll3"), [
        hll.hll_init("f", 10),
        hll.hll_add("f", names),
        hll.hll_fold("f", 6),
        hll.hll_describe("f"),
        hll.hll_get_count("f"),
    ])
    assert out[3][1] == [6, 0] and within(out[4][1], 5000, 6)


def test_hll_flags_and_errors(client):
    key = (NS, SET, "hllflags")
    client.put(key, {"i": 1})
    create_only = {"flags": aerospike.HLL_WRITE_CREATE_ONLY}
    update_only = {"flags": aerospike.HLL_WRITE_UPDATE_ONLY}
    no_fail = {"flags": aerospike.HLL_WRITE_CREATE_ONLY | aerospike.HLL_WRITE_NO_FAIL}
    allow_fold = {"flags": aerospike.HLL_WRITE_ALLOW_FOLD}

    client.operate(key, [hll.hll_init("h", 8, policy=create_only)])
    with pytest.raises(ex.BinExistsError):
        client.operate(key, [hll.hll_init("h", 8, policy=create_only)])
    client.operate(key, [hll.hll_init("h", 8, policy=no_fail)])
    with pytest.raises(ex.BinNotFound):
        client.operate(key, [hll.hll_init("g", 8, policy=update_only)])
    # bad descriptions are parameter errors; an add without bits cannot create the bin
    with pytest.raises(ex.InvalidRequest):
        client.operate(key, [hll.hll_init("g", 17)])
    with pytest.raises(ex.InvalidRequest):
        client.operate(key, [hll.hll_init("g", 16, 49)])
    with pytest.raises(ex.BinNotFound):
        client.operate(key, [hll.hll_add("g", ["a"])])
    with pytest.raises(ex.BinNotFound):
        client.operate(key, [hll.hll_refresh_count("g")])
    # folding: only down, only without minhash; set-union shrinking the bin needs ALLOW_FOLD
    with pytest.raises(ex.OpNotApplicable):
        client.operate(key, [hll.hll_fold("h", 10)])
    small_key = (NS, SET, "hllsmall")
    client.operate(small_key, [hll.hll_add("h", ["a", "b"], 4)])
    small = client.get(small_key)[2]["h"]
    with pytest.raises(ex.OpNotApplicable):
        client.operate(key, [hll.hll_set_union("h", [small])])
    client.operate(key, [hll.hll_set_union("h", [small], policy=allow_fold)])
    assert client.operate(key, [hll.hll_describe("h")])[2]["h"] == [4, 0]
    # an HLL op on an integer bin; reads of a missing bin are nil
    with pytest.raises(ex.BinIncompatibleType):
        client.operate(key, [hll.hll_get_count("i")])
    assert client.operate(key, [hll.hll_get_count("nope")])[2]["nope"] is None
