"""List and map (CDT) operations through the official Python client's
`aerospike_helpers.operations` builders against a 3-node cluster: results and bins as
Aerospike answers them, ordered lists and maps, return types, write flags and error codes."""

import aerospike
import pytest
from aerospike import exception as ex
from aerospike_helpers.operations import list_operations as lo
from aerospike_helpers.operations import map_operations as mo
from aerospike_helpers.operations import operations as op


NS, SET = "test", "cdt"


def results(client, key, ops):
    return [r[1] for r in client.operate_ordered(key, ops)[2]]


def test_list_writes_and_reads(client):
    key = (NS, SET, "list1")
    assert results(client, key, [lo.list_append("l", 5), lo.list_append_items("l", [7, 8])]) == [1, 3]
    assert results(client, key, [lo.list_insert("l", 1, 6), lo.list_size("l")]) == [4, 4]
    assert client.get(key)[2]["l"] == [5, 6, 7, 8]
    assert results(client, key, [lo.list_get("l", -1), lo.list_get_range("l", 1, 2)]) == [8, [6, 7]]
    assert results(client, key, [lo.list_increment("l", 0, 10)]) == [15]
    assert results(client, key, [lo.list_pop("l", 0), lo.list_remove("l", 0)]) == [15, 1]
    assert client.get(key)[2]["l"] == [7, 8]
    client.operate(key, [lo.list_set("l", 4, "x")])
    assert client.get(key)[2]["l"] == [7, 8, None, None, "x"]
    assert results(client, key, [lo.list_trim("l", 0, 2)]) == [3]
    client.operate(key, [lo.list_clear("l")])
    assert client.get(key)[2]["l"] == []


def test_list_selectors_and_return_types(client):
    key = (NS, SET, "list2")
    client.put(key, {"l": [3, 1, 2, 1, "a"]})
    rt = aerospike
    assert results(client, key, [
        lo.list_get_by_value("l", 1, rt.LIST_RETURN_INDEX),
        lo.list_get_by_rank("l", 0, rt.LIST_RETURN_VALUE),
        lo.list_get_by_rank_range("l", -2, rt.LIST_RETURN_VALUE, 2),
        lo.list_get_by_value_range("l", rt.LIST_RETURN_COUNT, 1, 3),
        lo.list_get_by_index_range("l", 1, rt.LIST_RETURN_VALUE, 2, inverted=True),
        lo.list_get_by_value_list("l", [2, 3], rt.LIST_RETURN_REVERSE_INDEX),
        lo.list_get_by_value("l", 9, rt.LIST_RETURN_EXISTS),
    ]) == [[1, 3], 1, [3, "a"], 3, [3, 1, "a"], [4, 2], False]
    assert results(client, key, [lo.list_remove_by_value("l", 1, rt.LIST_RETURN_COUNT)]) == [2]
    assert client.get(key)[2]["l"] == [3, 2, "a"]
    client.operate(key, [lo.list_sort("l", rt.LIST_SORT_DEFAULT)])
    assert client.get(key)[2]["l"] == [2, 3, "a"]


def test_ordered_lists_and_write_flags(client):
    key = (NS, SET, "list3")
    ordered = {"list_order": aerospike.LIST_ORDERED}
    client.operate(key, [lo.list_append_items("l", [5, 1, 3], ordered)])
    client.operate(key, [lo.list_append("l", 2, ordered)])
    assert client.get(key)[2]["l"] == [1, 2, 3, 5]
    unique = {"write_flags": aerospike.LIST_WRITE_ADD_UNIQUE}
    with pytest.raises(ex.AerospikeError) as e:
        client.operate(key, [lo.list_append("l", 2, unique)])
    assert e.value.code == 24
    quiet = {"write_flags": aerospike.LIST_WRITE_ADD_UNIQUE | aerospike.LIST_WRITE_NO_FAIL}
    assert results(client, key, [lo.list_append("l", 2, quiet)]) == [4]
    with pytest.raises(ex.OpNotApplicable):
        client.operate(key, [lo.list_get("l", 10)])
    client.put((NS, SET, "notalist"), {"l": 1})
    with pytest.raises(ex.BinIncompatibleType):
        client.operate((NS, SET, "notalist"), [lo.list_append("l", 1)])


def test_map_operations(client):
    key = (NS, SET, "map1")
    assert results(client, key, [mo.map_put("m", "b", 2), mo.map_put_items("m", {"a": 1, "c": 3})]) == [1, 3]
    assert results(client, key, [mo.map_increment("m", "a", 10), mo.map_decrement("m", "c", 1)]) == [11, 2]
    assert results(client, key, [
        mo.map_get_by_key("m", "a", aerospike.MAP_RETURN_VALUE),
        mo.map_size("m"),
        mo.map_get_by_rank("m", -1, aerospike.MAP_RETURN_KEY),
        mo.map_get_by_key_range("m", "a", "c", aerospike.MAP_RETURN_KEY),
        mo.map_get_by_value("m", 2, aerospike.MAP_RETURN_KEY),
        mo.map_get_by_index("m", 0, aerospike.MAP_RETURN_KEY),
        mo.map_get_by_key("m", "zz", aerospike.MAP_RETURN_VALUE),
    ]) == [11, 3, "a", ["a", "b"], ["b", "c"], "a", None]
    top = client.operate(key, [mo.map_get_by_rank_range("m", -2, 2, aerospike.MAP_RETURN_KEY_VALUE)])[2]["m"]
    assert dict(top) == {"a": 11, "b": 2} or dict(top) == {"a": 11, "c": 2}
    assert results(client, key, [mo.map_remove_by_key("m", "b", aerospike.MAP_RETURN_VALUE)]) == [2]
    assert client.get(key)[2]["m"] == {"a": 11, "c": 2}
    create_only = {"map_write_flags": aerospike.MAP_WRITE_FLAGS_CREATE_ONLY}
    with pytest.raises(ex.AerospikeError) as e:
        client.operate(key, [mo.map_put("m", "a", 0, create_only)])
    assert e.value.code == 24
    update_only = {"map_write_flags": aerospike.MAP_WRITE_FLAGS_UPDATE_ONLY}
    with pytest.raises(ex.AerospikeError) as e:
        client.operate(key, [mo.map_put("m", "new", 0, update_only)])
    assert e.value.code == 23
    client.operate(key, [mo.map_clear("m")])
    assert client.get(key)[2]["m"] == {}


def test_key_ordered_maps_keep_key_order(client):
    key = (NS, SET, "map2")
    policy = {"map_order": aerospike.MAP_KEY_ORDERED}
    client.operate(key, [mo.map_put_items("m", {"c": 3, "a": 1, "b": 2}, policy)])
    assert list(client.get(key)[2]["m"].keys()) == ["a", "b", "c"]
    assert results(client, key, [mo.map_get_by_index_range("m", 1, 2, aerospike.MAP_RETURN_VALUE)]) == [[2, 3]]


def test_reads_only_operate_uses_the_read_path(client):
    key = (NS, SET, "list4")
    client.put(key, {"l": [1, 2, 3], "x": 9})
    # Only read operations: the client sends a read command.
    assert results(client, key, [lo.list_size("l"), op.read("x"), lo.list_get("l", 1)]) == [3, 9, 2]
    assert client.get(key)[1]["gen"] == 1


def test_nested_contexts(client):
    from aerospike_helpers import cdt_ctx as ctx
    key = (NS, SET, "nested")
    client.put(key, {"doc": {"tags": ["a", "b"], "scores": {"x": 1}}, "l": [[1, 2], [3]]})
    client.operate(key, [lo.list_append("doc", "c", ctx=[ctx.cdt_ctx_map_key("tags")])])
    assert client.get(key)[2]["doc"]["tags"] == ["a", "b", "c"]
    assert results(client, key, [
        mo.map_increment("doc", "x", 5, ctx=[ctx.cdt_ctx_map_key("scores")]),
        lo.list_size("l", ctx=[ctx.cdt_ctx_list_index(0)]),
        lo.list_get("l", 0, ctx=[ctx.cdt_ctx_list_index(-1)]),
    ]) == [6, 2, 3]
    # Created on the way down: a new map under key "new".
    client.operate(key, [mo.map_put("doc", "k", 1, ctx=[ctx.cdt_ctx_map_key_create("new", aerospike.MAP_KEY_ORDERED)])])
    assert client.get(key)[2]["doc"]["new"] == {"k": 1}
    with pytest.raises(ex.OpNotApplicable):
        client.operate(key, [lo.list_append("doc", 1, ctx=[ctx.cdt_ctx_map_key("missing")])])


def test_list_ranges_create_set_order_and_increment_flags(client):
    key = (NS, SET, "list5")
    client.put(key, {"l": [1, 2, 3, 4, 5, 6]})
    assert results(client, key, [lo.list_pop_range("l", 1, 2), lo.list_remove_range("l", -2, 2)]) == [[2, 3], 2]
    assert results(client, key, [lo.list_insert_items("l", 1, [8, 7])]) == [4]
    assert client.get(key)[2]["l"] == [1, 8, 7, 4]
    client.operate(key, [lo.list_set_order("l", aerospike.LIST_ORDERED)])
    assert client.get(key)[2]["l"] == [1, 4, 7, 8]
    # An appended value takes its place in an ordered list.
    client.operate(key, [lo.list_create("o", aerospike.LIST_ORDERED, False, False), lo.list_append("o", 3), lo.list_append("o", 1)])
    assert client.get(key)[2]["o"] == [1, 3]

    key = (NS, SET, "list6")
    client.put(key, {"l": [1, 2]})
    bounded = {"write_flags": aerospike.LIST_WRITE_INSERT_BOUNDED}
    with pytest.raises(ex.OpNotApplicable):
        client.operate(key, [lo.list_increment("l", 5, 1, bounded)])
    quiet = {"write_flags": aerospike.LIST_WRITE_INSERT_BOUNDED | aerospike.LIST_WRITE_NO_FAIL}
    client.operate(key, [lo.list_increment("l", 5, 1, quiet)])
    unique = {"write_flags": aerospike.LIST_WRITE_ADD_UNIQUE}
    with pytest.raises(ex.ElementExistsError):
        client.operate(key, [lo.list_increment("l", 0, 1, unique)])
    assert results(client, key, [lo.list_increment("l", 0, 5, unique)]) == [6]
    assert client.get(key)[2]["l"] == [6, 2]
    # Without the bound, an increment past the end pads with nils.
    client.operate(key, [lo.list_increment("l", 3, 1)])
    assert client.get(key)[2]["l"] == [6, 2, None, 1]


def test_map_orders_return_types_and_relative_selectors(client):
    key = (NS, SET, "map3")
    kv = {"map_order": aerospike.MAP_KEY_VALUE_ORDERED}
    client.operate(key, [mo.map_put_items("m", {"c": 3, "a": 1, "d": 4, "b": 2}, kv)])
    assert list(client.get(key)[2]["m"].keys()) == ["a", "b", "c", "d"]
    rt = aerospike
    assert results(client, key, [
        # From the key "b", one index on: "c" and "d".
        mo.map_get_by_key_index_range_relative("m", "b", 1, rt.MAP_RETURN_KEY, 2),
        # From the value 2, one rank down: the values 1 and 2.
        mo.map_get_by_value_rank_range_relative("m", 2, -1, rt.MAP_RETURN_VALUE, 2),
        mo.map_get_by_key_range("m", "a", "c", rt.MAP_RETURN_ORDERED_MAP),
        mo.map_get_by_index_range("m", 2, 2, rt.MAP_RETURN_UNORDERED_MAP),
        mo.map_get_by_rank("m", -1, rt.MAP_RETURN_KEY_VALUE),
    ]) == [["c", "d"], [1, 2], {"a": 1, "b": 2}, {"c": 3, "d": 4}, {"d": 4}]
    assert results(client, key, [
        mo.map_remove_by_key_index_range_relative("m", "a", 2, rt.MAP_RETURN_COUNT, None),
    ]) == [2]
    assert client.get(key)[2]["m"] == {"a": 1, "b": 2}

    key = (NS, SET, "map4")
    client.put(key, {"u": {"z": 1, "a": 2, "m": 3}})
    client.operate(key, [mo.map_set_policy("u", {"map_order": aerospike.MAP_KEY_ORDERED})])
    assert list(client.get(key)[2]["u"].keys()) == ["a", "m", "z"]
    client.operate(key, [mo.map_create("n", aerospike.MAP_KEY_ORDERED, False), mo.map_put("n", "y", 1), mo.map_put("n", "x", 2)])
    assert list(client.get(key)[2]["n"].keys()) == ["x", "y"]


def test_context_selectors_by_rank_value_and_index(client):
    from aerospike_helpers import cdt_ctx as ctx
    key = (NS, SET, "ctx2")
    client.put(key, {"l": [[3, 1], [9], [5, 5, 5]], "m": {"a": [1], "b": [2, 2], "c": [3, 3, 3]}})
    assert results(client, key, [
        lo.list_size("l", ctx=[ctx.cdt_ctx_list_rank(0)]),  # [3, 1] < [5, 5, 5] < [9]
        lo.list_size("l", ctx=[ctx.cdt_ctx_list_value([9])]),
        lo.list_size("m", ctx=[ctx.cdt_ctx_map_index(2)]),
        lo.list_size("m", ctx=[ctx.cdt_ctx_map_rank(0)]),
        lo.list_size("m", ctx=[ctx.cdt_ctx_map_value([2, 2])]),
    ]) == [2, 1, 3, 1, 2]
    client.operate(key, [lo.list_append("l", 7, ctx=[ctx.cdt_ctx_list_index_create(3, aerospike.LIST_UNORDERED, False)])])
    assert client.get(key)[2]["l"] == [[3, 1], [9], [5, 5, 5], [7]]
    client.operate(key, [lo.list_append("m", 4, ctx=[ctx.cdt_ctx_map_rank(-1)])])
    assert client.get(key)[2]["m"]["c"] == [3, 3, 3, 4]
