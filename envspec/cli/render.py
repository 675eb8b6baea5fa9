"""`envspec render`: the manifests a spec compiles to, in apply order."""

from __future__ import annotations

import os
from pathlib import Path

import click

from envspec.cli.options import env_id, output_format, spec_file
from envspec.pipeline import build_plan, load_spec, plan_slots
from envspec.render import generate_secrets, plan_text, write_directory


@click.command("render")
@spec_file
@env_id
@click.option("--tests", "include_tests", is_flag=True, help="Include a Job per test (last wave).")
@output_format("yaml", "json", default="yaml")
@click.option(
    "--out-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write one file per object into DIR, named so `kubectl apply -f DIR` applies them in order.",
)
@click.option(
    "--show-secrets",
    is_flag=True,
    help="Fill database passwords with freshly generated random values instead of a placeholder, "
    "so the output can be applied as it is.",
)
def command(
    file: str, env_id: str | None, include_tests: bool, output: str, out_dir: Path | None, show_secrets: bool
) -> None:
    """Print the Kubernetes manifests a spec compiles to, in the order they are applied.

    Objects come in waves: the Namespace; quota, limit range and network policy;
    Secrets; Services; database StatefulSets; then service Deployments, one wave per
    layer of `dependsOn`; Jobs last (with --tests). Each carries its wave in the
    annotation envspec.dev/wave.

    Database passwords are never invented for a review: Secrets show the placeholder
    <generated-at-apply> unless --show-secrets is given.

    \b
    Examples:
      envspec render
      envspec render --id pr-42 --tests -o json
      envspec render --show-secrets | kubectl apply -f -
      envspec render --out-dir manifests/ && kubectl apply -f manifests/
    """
    valid = load_spec(file, os.environ)
    secrets = generate_secrets(plan_slots(valid)) if show_secrets else None
    plan = build_plan(valid, env_id=env_id, secrets=secrets, include_tests=include_tests)
    if out_dir is not None:
        written = write_directory(plan, out_dir, output)
        click.echo(f"wrote {len(written)} files to {out_dir}", err=True)
        return
    click.echo(plan_text(plan, output), nl=False)
