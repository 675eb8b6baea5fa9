"""`envspec serve --print-manifests`: what it takes to run the REST API inside a cluster.

A Namespace, a ServiceAccount, a ClusterRole with what the operations need and no
more, its ClusterRoleBinding, a Deployment running `envspec serve` on port 8004 with
the in-cluster configuration, and a Service on port 8004. The tokens are read from a
Secret the operator creates; these manifests hold none.

The ClusterRole is derived from what envspec reads and writes (`envspec.kube.kinds`):
write verbs only on the kinds a spec compiles to, read and delete on the other kinds
an environment may hold (down and prune remove them), read on pods, replica sets,
events and storage classes (readiness), and patch on namespaces (leases, operation
records). Environments live in namespaces created on demand, hence cluster-wide.
"""

from __future__ import annotations

from envspec import __version__
from envspec.errors import EnvspecError
from envspec.kube import kinds
from envspec.lifecycle.janitor import NAME_LABEL, PART_OF_LABEL
from envspec.model import DNS_LABEL
from envspec.plan import Manifest
from envspec.templates import render

API_NAME = "envspec-api"
DEFAULT_NAMESPACE = "envspec-system"
DEFAULT_IMAGE = f"envspec:{__version__}"
TOKENS_SECRET = "envspec-api-tokens"
READ = ["get", "list", "watch"]
# Server-side apply is a PATCH (plus create when the object is new); merge patches too: no update.
WRITE = [*READ, "create", "patch", "delete"]
# What compiled specs contain (compiler.py, templates/): created and updated by server-side apply.
WRITTEN_KINDS = (
    "Namespace",
    "NetworkPolicy",
    "ResourceQuota",
    "LimitRange",
    "Secret",
    "Service",
    "Deployment",
    "StatefulSet",
    "Job",
    "ConfigMap",
    "ServiceAccount",
)
OBSERVED = (kinds.POD, kinds.REPLICA_SET, kinds.EVENT, kinds.STORAGE_CLASS)


def _group(rtype: kinds.ResourceType) -> str:
    return rtype.api_version.rpartition("/")[0]


def cluster_role_rules() -> list[dict[str, list[str]]]:
    """The rules, grouped by API group and verbs, in a stable order."""
    grouped: dict[tuple[str, tuple[str, ...]], list[str]] = {}

    def allow(rtype: kinds.ResourceType, verbs: list[str]) -> None:
        grouped.setdefault((_group(rtype), tuple(verbs)), []).append(rtype.plural)

    for rtype in kinds.MANAGED_KINDS.values():
        # RBAC objects are only ever read and deleted: creating them would need escalate/bind.
        allow(rtype, WRITE if rtype.kind in WRITTEN_KINDS else [*READ, "delete"])
    for rtype in OBSERVED:
        allow(rtype, READ)
    rules = [
        {"apiGroups": [group], "resources": sorted(set(resources)), "verbs": list(verbs)}
        for (group, verbs), resources in sorted(grouped.items())
    ]
    rules.append({"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]})  # test logs
    return rules


def serve_manifests(
    *,
    namespace: str = DEFAULT_NAMESPACE,
    image: str = DEFAULT_IMAGE,
    namespace_prefix: str = "envspec",
    tokens_secret: str = TOKENS_SECRET,
) -> list[Manifest]:
    """The manifests in apply order (the namespace first, the Service last)."""
    for option, value in (("--api-namespace", namespace), ("--tokens-secret", tokens_secret)):
        if not (DNS_LABEL.fullmatch(value) and len(value) <= 63):
            raise EnvspecError(
                f"{option} {value!r}: use at most 63 lower-case letters, digits and '-', "
                "starting and ending with a letter or digit"
            )
    if not image.strip() or any(c.isspace() for c in image):
        raise EnvspecError(f"--image {image!r}: not an image reference")
    selector = {NAME_LABEL: API_NAME}
    # No managed-by=envspec label: gc and `down` must never see the API's own objects.
    labels = {**selector, PART_OF_LABEL: "envspec"}
    common = {"name": API_NAME, "namespace": namespace, "labels": labels}
    role: Manifest = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": API_NAME, "labels": labels},
        "rules": cluster_role_rules(),
    }
    return [
        render("janitor/namespace", namespace=namespace, labels={PART_OF_LABEL: "envspec"}),
        render("janitor/serviceaccount", **common),
        role,
        render("janitor/clusterrolebinding", **common),
        render(
            "serve/deployment",
            **common,
            selector=selector,
            image=image,
            namespace_prefix=namespace_prefix,
            tokens_secret=tokens_secret,
        ),
        render("serve/service", **common, selector=selector),
    ]
