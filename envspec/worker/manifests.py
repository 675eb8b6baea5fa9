"""`envspec worker --print-manifests`: what it takes to run workers inside a cluster.

A Namespace, a ServiceAccount, a least-privilege ClusterRole (templates/worker/: the
verbs and kinds the pipeline uses, nothing else), its ClusterRoleBinding, and a
Deployment running `envspec worker` with the in-cluster configuration
(K8S_IN_CLUSTER=true) and REDIS_URL from a Secret the operator creates. The image is
built from the repository's Dockerfile. The Namespace, ServiceAccount and binding are
the janitor's templates (`envspec gc --print-manifests`), with the worker's names.
"""

from __future__ import annotations

from envspec.errors import EnvspecError
from envspec.lifecycle.janitor import DEFAULT_IMAGE, DEFAULT_NAMESPACE, DNS_LABEL, NAME_LABEL, PART_OF_LABEL
from envspec.plan import Manifest
from envspec.templates import render

WORKER_NAME = "envspec-worker"
DEFAULT_REDIS_SECRET = "envspec-worker-redis"


def worker_manifests(
    *,
    namespace: str = DEFAULT_NAMESPACE,
    image: str = DEFAULT_IMAGE,
    replicas: int = 2,
    namespace_prefix: str = "envspec",
    redis_secret: str = DEFAULT_REDIS_SECRET,
    worker_args: tuple[str, ...] = (),
) -> list[Manifest]:
    """The manifests in apply order (the namespace first, the Deployment last)."""
    for option, value in (("--manifests-namespace", namespace), ("--redis-secret", redis_secret)):
        if not DNS_LABEL.match(value):
            raise EnvspecError(
                f"{option} {value!r}: use at most 63 lower-case letters, digits and '-', "
                "starting and ending with a letter or digit"
            )
    if not image.strip() or any(c.isspace() for c in image):
        raise EnvspecError(f"--image {image!r}: not an image reference")
    if replicas < 0:
        raise EnvspecError(f"--replicas {replicas}: must not be negative")
    selector = {NAME_LABEL: WORKER_NAME}
    # No managed-by=envspec label on any of them: gc and prune must never see them.
    labels = {**selector, PART_OF_LABEL: "envspec"}
    args = ["worker", "--consumer", "$(CONSUMER_NAME)", *worker_args]
    common = {"name": WORKER_NAME, "namespace": namespace, "labels": labels}
    return [
        render("janitor/namespace", namespace=namespace, labels={PART_OF_LABEL: "envspec"}),
        render("janitor/serviceaccount", **common),
        render("worker/clusterrole", name=WORKER_NAME, labels=labels),
        render("janitor/clusterrolebinding", **common),
        render(
            "worker/deployment",
            **common,
            selector=selector,
            image=image,
            args=args,
            replicas=replicas,
            namespace_prefix=namespace_prefix,
            redis_secret=redis_secret,
        ),
    ]
