"""`envspec worker`: serve environment requests from a Redis stream until SIGTERM."""

from __future__ import annotations

import logging
import os
import sys

import click

from envspec.cli.options import Duration, checked_redis_url, cluster_options, output_format, target
from envspec.cli.run import run_service


@click.command("worker")
@click.option(
    "--redis",
    "redis_url",
    metavar="URL",
    default=None,
    callback=checked_redis_url,
    help="Redis URL [default: $REDIS_URL].",
)
@click.option(
    "--stream-prefix",
    metavar="PREFIX",
    default="maestro:streams:k8s",
    show_default=True,
    help="Streams <prefix>:jobs, :results, :status and :dead.",
)
@click.option("--group", default="envspec", show_default=True, help="The consumer group the workers share.")
@click.option("--consumer", metavar="NAME", default=None, help="This worker's name in the group [default: host-pid].")
@click.option("--concurrency", type=click.IntRange(min=1), default=4, show_default=True, help="Requests run at a time.")
@click.option(
    "--claim-idle",
    type=Duration(),
    default="60s",
    show_default=True,
    help="Take over a request another worker left unacknowledged this long.",
)
@click.option(
    "--max-deliveries",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Dead-letter a request delivered more often than this.",
)
@click.option(
    "--grace",
    type=Duration(),
    default="30s",
    show_default=True,
    help="On SIGTERM, let running requests finish this long.",
)
@click.option(
    "--lock-ttl",
    type=Duration(),
    default="30s",
    show_default=True,
    help="How long an environment's lock in Redis outlives a worker that died holding it "
    "(a live worker renews it every third of this).",
)
@click.option(
    "--maxlen",
    type=click.IntRange(min=1),
    default=10_000,
    show_default=True,
    help="Cap of every stream the worker writes (XADD ... MAXLEN ~ N).",
)
@click.option(
    "--timeout",
    type=Duration(),
    default="10m",
    show_default=True,
    help="How long one request may take (create: applying and waiting).",
)
@cluster_options
@click.option(
    "--print-manifests",
    is_flag=True,
    help="Print the manifests that run workers inside the cluster (Deployment, ServiceAccount, RBAC), and exit.",
)
@click.option(
    "--manifests-namespace",
    metavar="NAMESPACE",
    default="envspec-system",
    show_default=True,
    help="With --print-manifests: the namespace the workers run in.",
)
@click.option(
    "--image",
    metavar="IMAGE",
    default=None,
    help="With --print-manifests: the envspec image (built from the repository's Dockerfile) "
    "[default: envspec:<version>].",
)
@click.option(
    "--replicas", type=click.IntRange(min=0), default=2, show_default=True, help="With --print-manifests: workers."
)
@click.option(
    "--redis-secret",
    metavar="NAME",
    default="envspec-worker-redis",
    show_default=True,
    help="With --print-manifests: the Secret whose key `url` holds REDIS_URL.",
)
@output_format("yaml", "json", default="yaml")
def command(
    redis_url: str | None,
    stream_prefix: str,
    group: str,
    consumer: str | None,
    concurrency: int,
    claim_idle: int,
    max_deliveries: int,
    grace: int,
    lock_ttl: int,
    maxlen: int,
    timeout: int,
    kubeconfig: str | None,
    context: str | None,
    print_manifests: bool,
    manifests_namespace: str,
    image: str | None,
    replicas: int,
    redis_secret: str,
    output: str,
) -> None:
    """Serve environment requests written to <prefix>:jobs: create, delete, status, extend, cleanup.

    Requests are read through a consumer group (several workers share the work),
    served with the same operations as `up`, `down`, `status`, `extend` and `gc`, and
    answered in <prefix>:results; progress goes to <prefix>:status. A request is
    acknowledged only after its result is written. Malformed requests get an error
    result and a copy in <prefix>:dead.

    Configuration also comes from the original service's variables: REDIS_URL (or
    REDIS_HOST/REDIS_PORT/REDIS_PASSWORD/REDIS_DB), K8S_NAMESPACE_PREFIX,
    K8S_TTL_MINUTES, DEFAULT_CPU_LIMIT, DEFAULT_MEMORY_LIMIT, K8S_IN_CLUSTER.
    Flags win over variables.

    \b
    Exit codes: 0 stopped by SIGTERM or Ctrl-C, 1 bad configuration or Redis refused
    the credentials, 130 a second Ctrl-C.

    \b
    Examples:
      REDIS_URL=redis://redis:6379/0 K8S_NAMESPACE_PREFIX=quality-fabric envspec worker
      envspec worker --redis redis://localhost:6379/0 --concurrency 8
      envspec worker --print-manifests --image registry.example.com/envspec:0.1.0 | kubectl apply -f -
    """
    from envspec.errors import EnvspecError
    from envspec.report.redis_url import mask_url
    from envspec.service.operations import Service
    from envspec.service.settings import load_settings
    from envspec.worker.jobs import WorkerConfig, run_worker
    from envspec.worker.streams import ConsumerConfig, default_consumer_name

    settings = load_settings(os.environ)
    if print_manifests:
        from envspec.lifecycle.janitor import DEFAULT_IMAGE
        from envspec.present import manifests_text
        from envspec.worker.manifests import worker_manifests

        worker_args = ("--stream-prefix", stream_prefix, "--group", group, "--concurrency", str(concurrency))
        manifests = worker_manifests(
            namespace=manifests_namespace,
            image=image or DEFAULT_IMAGE,
            replicas=replicas,
            namespace_prefix=settings.namespace_prefix,
            redis_secret=redis_secret,
            worker_args=worker_args,
        )
        click.echo(manifests_text(manifests, output), nl=False)
        return
    url = redis_url or settings.redis_url
    if url is None:
        raise EnvspecError("no Redis to serve: give --redis URL or set REDIS_URL (or REDIS_HOST)")
    try:
        consumer_config = ConsumerConfig(
            url=url,
            stream_prefix=stream_prefix,
            group=group,
            consumer=consumer or default_consumer_name(),
            concurrency=concurrency,
            claim_idle=float(claim_idle),
            max_deliveries=max_deliveries,
            grace=float(grace),
            lock_ttl=float(lock_ttl),
            maxlen=maxlen,
        )
    except ValueError as exc:
        raise EnvspecError(f"worker: {exc}") from None
    service = Service(target(kubeconfig, context), settings, timeout_seconds=float(timeout))
    # The worker's own log lines on stderr; other libraries' (httpx logs every request) stay quiet.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log = logging.getLogger("envspec")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.info("worker: Redis %s, cluster %s", mask_url(url), service.target.describe())
    run_service(lambda: run_worker(WorkerConfig(consumer_config, service)))
