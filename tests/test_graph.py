"""Dependency layers and cycle detection."""

from __future__ import annotations

import pytest

from envspec.graph import CycleError, find_cycle, layers, layers_text


def test_cycle_is_named_with_the_first_node_repeated() -> None:
    edges = {"alpha": ["beta"], "beta": ["gamma"], "gamma": ["alpha"]}
    with pytest.raises(CycleError) as info:
        layers(edges)
    assert str(info.value) == "alpha -> beta -> gamma -> alpha"
    assert info.value.cycle == ["alpha", "beta", "gamma", "alpha"]


def test_cycle_text_is_stable_whatever_the_input_order() -> None:
    edges = {"gamma": ["alpha"], "beta": ["gamma"], "alpha": ["beta"]}
    assert find_cycle(edges) == ["alpha", "beta", "gamma", "alpha"]


def test_cycle_reachable_from_an_acyclic_start() -> None:
    edges = {"a": ["b"], "b": ["c"], "c": ["d"], "d": ["b"]}
    assert find_cycle(edges) == ["b", "c", "d", "b"]


def test_self_loop() -> None:
    assert find_cycle({"a": ["a"]}) == ["a", "a"]
    with pytest.raises(CycleError, match=r"^a -> a$"):
        layers({"a": ["a"]})


def test_no_cycle() -> None:
    assert find_cycle({"a": ["b"], "b": [], "c": ["a", "b"]}) is None
    assert find_cycle({}) is None


def test_layers() -> None:
    edges = {"gateway": ["catalog"], "catalog": ["inventory", "db"], "inventory": [], "worker": [], "api": []}
    result = layers(edges)
    assert result == [["api", "inventory", "worker"], ["catalog"], ["gateway"]]
    assert layers_text(result) == "0: api inventory worker\n1: catalog\n2: gateway\n"


def test_layer_is_one_more_than_the_deepest_dependency() -> None:
    edges = {"d": ["a", "c"], "c": ["b"], "b": ["a"], "a": []}
    assert layers_text(layers(edges)) == "0: a\n1: b\n2: c\n3: d\n"


def test_diamond() -> None:
    edges = {"top": ["left", "right"], "left": ["base"], "right": ["base"], "base": []}
    assert layers_text(layers(edges)) == "0: base\n1: left right\n2: top\n"


def test_targets_that_are_not_nodes_are_ignored() -> None:
    # dependsOn may name databases; they are not services and do not make layers
    assert layers({"api": ["db"], "worker": ["api", "cache"]}) == [["api"], ["worker"]]
    assert find_cycle({"api": ["db"], "db2": ["api"]}) is None


def test_duplicate_targets() -> None:
    assert layers({"a": ["b", "b"], "b": []}) == [["b"], ["a"]]


def test_empty() -> None:
    assert layers({}) == []
    assert layers_text([]) == ""


def test_long_chains_do_not_hit_the_recursion_limit() -> None:
    # each node depends on the next one, so a depth-first search from the first goes 2000 deep
    count = 2000
    edges = {f"s{i:05d}": [f"s{i + 1:05d}"] if i < count - 1 else [] for i in range(count)}
    result = layers(edges)
    assert len(result) == count
    assert result[0] == [f"s{count - 1:05d}"]
    assert result[-1] == ["s00000"]
    edges[f"s{count - 1:05d}"] = ["s00000"]
    cycle = find_cycle(edges)
    assert cycle is not None and len(cycle) == count + 1 and cycle[0] == cycle[-1] == "s00000"
