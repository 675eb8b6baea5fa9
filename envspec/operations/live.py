"""Reading what is live: an environment's namespace and every object labelled for it."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from envspec.inventory import Inventory
from envspec.kube import kinds
from envspec.kube.deadline import Deadline
from envspec.kube.ssa import get_object, list_objects
from envspec.kube.wait import task_group
from envspec.meta import belongs_to, environment_selector, is_test_run_object, key_of


async def read_inventory(
    api: Any,
    environment: str,
    namespace: str,
    *,
    deadline: Deadline,
    extra_types: Iterable[kinds.ResourceType] = (),
    only_types: Iterable[kinds.ResourceType] | None = None,
    expect_namespace: bool = False,
) -> Inventory:
    """The namespace (whatever its labels) and every object labelled for `environment`.

    One list per kind envspec manages (or per kind of `only_types`, for a reader that
    needs no more than those), concurrently: the cluster-scoped kinds together with
    reading the namespace, the namespaced kinds after it and only when it exists (a
    new environment: one round trip). With `expect_namespace` (a reader of an
    environment that should be up), the namespaced kinds are listed together with
    reading the namespace too (one round trip), and dropped if it turns out not to exist.
    """
    inventory = Inventory()
    every = kinds.MANAGED_KINDS.values() if only_types is None else only_types
    types = {t for t in [*every, *extra_types] if t.kind != "Namespace"}
    selector = environment_selector(environment)

    async def read_namespace() -> None:
        inventory.namespace = await get_object(api, kinds.NAMESPACE, namespace, None, deadline=deadline)

    async def collect(rtype: kinds.ResourceType) -> None:
        listing = await list_objects(api, rtype, namespace, deadline=deadline, label_selector=selector)
        for item in listing.items:
            # Test run Jobs are not the environment's objects: nothing compares them with a plan.
            if belongs_to(item, environment) and not is_test_run_object(item):
                inventory.objects[key_of(item)] = item

    async def collect_each(rtypes: set[kinds.ResourceType], *, reading_namespace: bool = False) -> None:
        async with task_group() as group:
            if reading_namespace:
                group.start_soon(read_namespace)
            for rtype in sorted(rtypes, key=lambda t: t.plural):
                group.start_soon(collect, rtype)

    with_namespace = types if expect_namespace else {t for t in types if not t.namespaced}
    await collect_each(with_namespace, reading_namespace=True)
    if inventory.namespace is not None:
        await collect_each(types - with_namespace)
    if inventory.namespace is None:
        inventory.objects = {key: obj for key, obj in inventory.objects.items() if key[2] is None}
    return inventory
