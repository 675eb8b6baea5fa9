"""`envspec gc --print-manifests`: what it takes to run gc inside a cluster.

A Namespace, a ServiceAccount, a ClusterRole allowing exactly get/list/delete on
namespaces, its ClusterRoleBinding, and a Deployment running `envspec gc --loop`
with the in-cluster configuration (K8S_IN_CLUSTER=true). The image is built from the
repository's Dockerfile. The objects come from templates/janitor/.
"""

from __future__ import annotations

import re

from envspec import __version__
from envspec.errors import EnvspecError
from envspec.plan import Manifest
from envspec.templates import render
from envspec.units import format_duration

JANITOR_NAME = "envspec-janitor"
DEFAULT_NAMESPACE = "envspec-system"
DEFAULT_IMAGE = f"envspec:{__version__}"
NAME_LABEL = "app.kubernetes.io/name"
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
PART_OF_LABEL = "app.kubernetes.io/part-of"


def janitor_manifests(
    *,
    namespace: str = DEFAULT_NAMESPACE,
    image: str = DEFAULT_IMAGE,
    interval_seconds: int = 30,
    stuck_after_seconds: int = 300,
) -> list[Manifest]:
    """The manifests in apply order (the namespace first, the Deployment last)."""
    if not DNS_LABEL.match(namespace):
        raise EnvspecError(
            f"--janitor-namespace {namespace!r}: use at most 63 lower-case letters, digits and '-', "
            "starting and ending with a letter or digit"
        )
    if not image.strip() or any(c.isspace() for c in image):
        raise EnvspecError(f"--image {image!r}: not an image reference")
    selector = {NAME_LABEL: JANITOR_NAME}
    # No managed-by=envspec label on any of them: gc must never see its own objects.
    labels = {**selector, PART_OF_LABEL: "envspec"}
    args = [
        "gc",
        "--loop",
        "--interval",
        format_duration(interval_seconds),
        "--stuck-after",
        format_duration(stuck_after_seconds),
    ]
    common = {"name": JANITOR_NAME, "namespace": namespace, "labels": labels}
    manifests: list[Manifest] = [
        render("janitor/namespace", namespace=namespace, labels={PART_OF_LABEL: "envspec"}),
        render("janitor/serviceaccount", **common),
        render("janitor/clusterrole", name=JANITOR_NAME, labels=labels),
        render("janitor/clusterrolebinding", **common),
        render("janitor/deployment", **common, selector=selector, image=image, args=args),
    ]
    return manifests
