"""What a container sees: the kubelet's `$(VAR)` expansion of command, args and env values.

A port of Kubernetes' third_party/forked/golang/expansion (Expand, tryReadVariableName) and
of how the kubelet applies it: env values in order, each from the variables defined before
it; command and args from the whole env. Tests use it to check that a rendered container
gets exactly the text the spec wrote, and that no secret reaches its command line.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any


def expand(text: str, mapping: Callable[[str], str]) -> str:
    out: list[str] = []
    checkpoint = 0
    cursor = 0
    while cursor < len(text):
        if text[cursor] == "$" and cursor + 1 < len(text):
            out.append(text[checkpoint:cursor])
            read, is_variable, advance = _read_variable_name(text[cursor + 1 :])
            out.append(mapping(read) if is_variable else read)
            cursor += advance
            checkpoint = cursor + 1
        cursor += 1
    return "".join(out) + text[checkpoint:]


def _read_variable_name(rest: str) -> tuple[str, bool, int]:
    if rest[0] == "$":
        return "$", False, 1  # `$$`: an escaped operator
    if rest[0] == "(":
        closing = rest.find(")", 1)
        if closing >= 0:
            return rest[1:closing], True, closing + 1
        return "$(", False, 1  # incomplete reference: kept
    return "$" + rest[0], False, 1


def mapping_of(variables: Mapping[str, str]) -> Callable[[str], str]:
    """Kubernetes keeps `$(NAME)` as written when NAME is not defined."""
    return lambda name: variables.get(name, f"$({name})")


def container_view(container: Mapping[str, Any], secrets: Mapping[tuple[str, str], str]) -> dict[str, Any]:
    """The env, command and args the process of `container` gets; `secrets` maps (secret, key) to a value."""
    env: dict[str, str] = {}
    for entry in container.get("env") or []:
        if "valueFrom" in entry:
            ref = entry["valueFrom"]["secretKeyRef"]
            env[entry["name"]] = secrets[(ref["name"], ref["key"])]
        else:
            env[entry["name"]] = expand(entry.get("value", ""), mapping_of(env))
    return {
        "env": env,
        "command": [expand(word, mapping_of(env)) for word in container.get("command") or []],
        "args": [expand(word, mapping_of(env)) for word in container.get("args") or []],
    }
