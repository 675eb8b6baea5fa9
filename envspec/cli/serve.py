"""`envspec serve`: the original service's REST API on port 8004."""

from __future__ import annotations

import os

import click

from envspec.cli.options import Duration, cluster_options, output_format


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", type=click.IntRange(1, 65535), default=None, help="Port to listen on (default: $SERVICE_PORT, else 8004)."
)
@cluster_options
@click.option(
    "--report-redis",
    metavar="URL",
    default=None,
    help="Publish every operation's status entries and result to Redis Streams (default: $REDIS_URL, if set).",
)
@click.option(
    "--token-file",
    "token_files",
    metavar="FILE",
    multiple=True,
    help="Bearer tokens, one per line (`TOKEN:read` for read-only); adds to $ENVSPEC_API_TOKENS.",
)
@click.option("--no-auth", is_flag=True, help="Serve without tokens (only on a loopback --host).")
@click.option(
    "--max-operations",
    type=click.IntRange(1, 64),
    default=4,
    show_default=True,
    help="Creates and deletes that run at once; more wait for a slot.",
)
@click.option(
    "--operation-timeout",
    type=Duration(),
    default="10m",
    show_default=True,
    help="How long one create or delete may take (requests, retries and waiting).",
)
@click.option(
    "--max-replicas",
    type=click.IntRange(0, 10_000),
    default=50,
    show_default=True,
    help="Most replicas one service of a request may ask for (422 above).",
)
@click.option(
    "--heartbeat",
    type=click.FloatRange(0.5, 300),
    default=5.0,
    hidden=True,
    help="Seconds between renewals of a running operation's record on its namespace.",
)
@click.option(
    "--print-manifests",
    is_flag=True,
    help="Print the Namespace, ServiceAccount, ClusterRole(Binding), Deployment and Service that run "
    "`serve` in a cluster, and exit.",
)
@click.option(
    "--api-namespace",
    default="envspec-system",
    show_default=True,
    help="With --print-manifests: the namespace the API runs in.",
)
@click.option("--image", default=None, help="With --print-manifests: the envspec image (default envspec:VERSION).")
@click.option(
    "--tokens-secret",
    default="envspec-api-tokens",
    show_default=True,
    help="With --print-manifests: the Secret (key `tokens`) the Deployment reads ENVSPEC_API_TOKENS from.",
)
@output_format("yaml", "json", default="yaml")
def command(
    host: str,
    port: int | None,
    kubeconfig: str | None,
    context: str | None,
    report_redis: str | None,
    token_files: tuple[str, ...],
    no_auth: bool,
    max_operations: int,
    operation_timeout: int,
    max_replicas: int,
    heartbeat: float,
    print_manifests: bool,
    api_namespace: str,
    image: str | None,
    tokens_secret: str,
    output: str,
) -> None:
    """Serve the REST API of the k8s-execution service (under /api/v1/k8s-execution).

    Every endpoint but /health needs `Authorization: Bearer TOKEN`. The variables of
    the original service apply: SERVICE_PORT, K8S_NAMESPACE_PREFIX, K8S_TTL_MINUTES,
    DEFAULT_CPU_LIMIT, DEFAULT_MEMORY_LIMIT, REDIS_URL, K8S_IN_CLUSTER. The OpenAPI
    document is at /openapi.json, its browsable form at /docs (works offline).

    \b
    Examples:
      ENVSPEC_API_TOKENS=$(cat tokens) envspec serve --host 0.0.0.0
      envspec serve --no-auth --port 9000
      curl -H "Authorization: Bearer $TOKEN" localhost:8004/api/v1/k8s-execution/environments
      envspec serve --print-manifests --image registry.example.com/envspec:0.1.0 | kubectl apply -f -
    """
    if print_manifests:
        _print_manifests(api_namespace, image, tokens_secret, output)
        return

    import anyio

    from envspec.api.server import ServeOptions, build_server
    from envspec.cli.main import start_collecting
    from envspec.service.settings import service_port

    options = ServeOptions(
        host=host,
        port=port if port is not None else service_port(os.environ),
        kubeconfig=kubeconfig,
        context=context,
        report_redis=report_redis,
        token_files=token_files,
        no_auth=no_auth,
        max_operations=max_operations,
        operation_timeout=operation_timeout,
        max_replicas=max_replicas,
        heartbeat_seconds=heartbeat,
    )
    server = build_server(options, os.environ)
    start_collecting()
    anyio.run(server.serve)


def _print_manifests(namespace: str, image: str | None, tokens_secret: str, output: str) -> None:
    from envspec.api.manifests import DEFAULT_IMAGE, serve_manifests
    from envspec.present import manifests_text
    from envspec.service.settings import load_settings

    prefix = load_settings(os.environ).namespace_prefix
    manifests = serve_manifests(
        namespace=namespace, image=image or DEFAULT_IMAGE, namespace_prefix=prefix, tokens_secret=tokens_secret
    )
    click.echo(manifests_text(manifests, output), nl=False)
