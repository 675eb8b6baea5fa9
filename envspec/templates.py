"""Load the YAML templates under templates/ and fill them structurally.

Filling walks the parsed tree: a string that is exactly `{{name}}` becomes the value
(any type; None drops the key or item), and `{{name}}` inside a longer string becomes
the value's text. Nothing is substituted into YAML text, so no value can break it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from envspec.resources import data_dir

_WHOLE = re.compile(r"^\{\{(\w+)\}\}$")
_EMBEDDED = re.compile(r"\{\{(\w+)\}\}")


class _Drop:
    """Marks a filled value that must be left out of its parent."""


_DROP = _Drop()


@cache
def template(name: str) -> Any:
    """The parsed template `templates/<name>.yaml` (cached; never mutate the result)."""
    path = data_dir("templates") / f"{name}.yaml"
    yaml = YAML(typ="safe")  # the C parser when installed, as in loader.py
    with path.open(encoding="utf-8") as handle:
        return yaml.load(handle)


def fill(tree: Any, values: Mapping[str, Any]) -> Any:
    """A new tree with every placeholder of `tree` replaced from `values` (KeyError if missing)."""
    result = _fill(tree, values)
    return None if result is _DROP else result


def _fill(node: Any, values: Mapping[str, Any]) -> Any:
    if isinstance(node, str):
        whole = _WHOLE.match(node)
        if whole:
            value = values[whole.group(1)]
            return _DROP if value is None else value
        if "{{" in node:
            return _EMBEDDED.sub(lambda m: str(values[m.group(1)]), node)
        return node
    if isinstance(node, dict):
        filled = {}
        for key, item in node.items():
            value = _fill(item, values)
            if value is not _DROP:
                filled[key] = value
        return filled
    if isinstance(node, list):
        return [value for value in (_fill(item, values) for item in node) if value is not _DROP]
    return node


def render(template_name: str, /, **values: Any) -> Any:
    """Fill template `template_name` with keyword values."""
    return fill(template(template_name), values)


@dataclass(frozen=True)
class Engine:
    """A database engine definition (templates/engines/<engine>.yaml)."""

    engine: str
    image: str
    default_version: str
    port: int
    user: str | None
    run_as_user: int
    data_path: str
    writable_paths: tuple[str, ...]  # besides data_path: the root filesystem is read-only
    attributes: tuple[str, ...]
    generated: tuple[str, ...]
    url: str
    env: list[Any]
    readiness_probe: dict[str, Any]
    liveness_probe: dict[str, Any]


@cache
def engine(name: str) -> Engine:
    raw = template(f"engines/{name}")
    return Engine(
        engine=raw["engine"],
        image=raw["image"],
        default_version=str(raw["defaultVersion"]),
        port=int(raw["port"]),
        user=raw.get("user"),
        run_as_user=int(raw["runAsUser"]),
        data_path=raw["dataPath"],
        writable_paths=tuple(raw["writablePaths"]),
        attributes=tuple(raw["attributes"]),
        generated=tuple(raw["generated"]),
        url=raw["url"],
        env=raw["env"],
        readiness_probe=raw["readinessProbe"],
        liveness_probe=raw["livenessProbe"],
    )


def template_names() -> list[str]:
    root: Path = data_dir("templates")
    return sorted(str(p.relative_to(root).with_suffix("")) for p in root.rglob("*.yaml"))
