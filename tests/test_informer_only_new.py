"""An informer of new objects only (as for events) reports what is made after it starts, nothing older."""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest

from envspec.kube import kinds
from envspec.kube.client import ClusterTarget, connect
from envspec.kube.deadline import Deadline
from envspec.kube.informer import Informer
from envspec.kube.ssa import collection_version, server_side_apply

pytestmark = pytest.mark.cluster

CONFIG_MAPS = kinds.MANAGED_KINDS[("v1", "ConfigMap")]


def config_map(name: str, namespace: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace}}


def test_only_new_objects_are_reported(kube_cluster: Any, kube_namespace: str) -> None:
    target = ClusterTarget(str(kube_cluster.kubeconfig))

    async def scenario() -> tuple[set[str], set[str]]:
        async with connect(target) as api:
            for index in range(3):
                await server_side_apply(
                    api, CONFIG_MAPS, config_map(f"old-{index}", kube_namespace), deadline=Deadline(10)
                )
            informer = Informer(api, CONFIG_MAPS, kube_namespace, on_change=lambda: None, only_new=True)
            async with anyio.create_task_group() as group:
                group.start_soon(informer.run)
                await informer.synced.wait()
                at_start = {key.split("/")[1] for key in informer.objects}
                await server_side_apply(api, CONFIG_MAPS, config_map("new-0", kube_namespace), deadline=Deadline(10))
                with anyio.fail_after(30):
                    while "new-0" not in {key.split("/")[1] for key in informer.objects}:
                        await anyio.sleep(0.05)
                group.cancel_scope.cancel()
            return at_start, {key.split("/")[1] for key in informer.objects}

    at_start, seen = anyio.run(scenario)
    assert at_start == set()
    assert "new-0" in seen and not any(name.startswith("old-") for name in seen)


def test_the_collection_version_is_read_from_one_item(kube_cluster: Any, kube_namespace: str) -> None:
    """Its version is a list's: a watch from it sees the next change, and nothing before it."""
    target = ClusterTarget(str(kube_cluster.kubeconfig))

    async def scenario() -> list[str]:
        async with connect(target) as api:
            for index in range(3):
                manifest = config_map(f"old-{index}", kube_namespace)
                await server_side_apply(api, CONFIG_MAPS, manifest, deadline=Deadline(10))
            version = await collection_version(api, CONFIG_MAPS, kube_namespace, deadline=Deadline(10))
            await server_side_apply(api, CONFIG_MAPS, config_map("after", kube_namespace), deadline=Deadline(10))
            seen: list[str] = []
            with anyio.fail_after(30):
                async with api.call_api(
                    "GET",
                    **CONFIG_MAPS.location(None, kube_namespace),
                    params={"watch": "true", "resourceVersion": version, "timeoutSeconds": "5"},
                    stream=True,
                ) as response:
                    async for line in response.aiter_lines():
                        if not line.strip():
                            continue
                        event = json.loads(line)
                        seen.append(f"{event['type']} {event['object']['metadata']['name']}")
                        if seen[-1].endswith(" after"):
                            break
            return seen

    assert anyio.run(scenario) == ["ADDED after"]
