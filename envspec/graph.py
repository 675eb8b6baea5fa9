"""Dependency graphs: topological layers with cycle detection."""

from __future__ import annotations

from collections.abc import Iterable, Mapping


class CycleError(ValueError):
    """A dependency cycle; `cycle` lists it with the first node repeated at the end."""

    def __init__(self, cycle: list[str]) -> None:
        self.cycle = cycle
        super().__init__(" -> ".join(cycle))


def find_cycle(edges: Mapping[str, Iterable[str]]) -> list[str] | None:
    """The first cycle found (nodes visited in sorted order, so the answer is stable), or None."""
    graph = {node: sorted(set(targets) & set(edges)) for node, targets in edges.items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    # Depth-first search with an explicit stack (a long dependsOn chain must not hit
    # Python's recursion limit): each entry is a node and the index of its next target.
    for start in sorted(graph):
        if start in state:
            continue
        path: list[str] = [start]
        stack: list[tuple[str, int]] = [(start, 0)]
        state[start] = 1
        while stack:
            node, index = stack[-1]
            targets = graph[node]
            if index == len(targets):
                stack.pop()
                path.pop()
                state[node] = 2
                continue
            stack[-1] = (node, index + 1)
            target = targets[index]
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state:
                state[target] = 1
                path.append(target)
                stack.append((target, 0))
    return None


def layers(edges: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Group nodes so each depends only on nodes of earlier layers; names sorted within a layer.

    `edges[a]` are the nodes `a` depends on; targets that are not nodes are ignored.
    Raises CycleError.
    """
    cycle = find_cycle(edges)
    if cycle:
        raise CycleError(cycle)
    remaining = {node: set(targets) & set(edges) for node, targets in edges.items()}
    result: list[list[str]] = []
    done: set[str] = set()
    while remaining:
        layer = sorted(node for node, targets in remaining.items() if targets <= done)
        result.append(layer)
        done.update(layer)
        for node in layer:
            del remaining[node]
    return result


def layers_text(result: list[list[str]]) -> str:
    """`0: a b` lines, the form tests compare."""
    return "".join(f"{index}: {' '.join(layer)}\n" for index, layer in enumerate(result))
