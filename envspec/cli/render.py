"""`envspec render`: the manifests a spec compiles to, in apply order."""

from __future__ import annotations

import os
from pathlib import Path

import click

from envspec.cli.options import env_id, output_format, spec_file
from envspec.errors import display_path
from envspec.pipeline import build_plan, load_spec, plan_slots
from envspec.render import generate_secrets, plan_text, write_directory


@click.command("render")
@spec_file
@env_id
@click.option("--tests", "include_tests", is_flag=True, help="Include a Job per test (last wave).")
@output_format("yaml", "json", default="yaml")
@click.option(
    "--out-dir",
    type=str,
    metavar="DIR",
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
    file: str, env_id: str | None, include_tests: bool, output: str, out_dir: str | None, show_secrets: bool
) -> None:
    """Print the Kubernetes manifests a spec compiles to, in the order they are applied.

    Objects come in waves: the Namespace; quota, limit range and network policy;
    Secrets; Services; database StatefulSets; then service Deployments, one wave per
    layer of `dependsOn`; Jobs last (with --tests). Each carries its wave in the
    annotation envspec.dev/wave.

    Database passwords are never invented for a review: without --show-secrets, each
    Secret shows the placeholder <generated-at-apply> under `data`, where the API server
    refuses it (it is not base64), so such a render cannot be applied with a password
    everybody knows. --show-secrets fills fresh random passwords instead.

    With --out-dir, a later render into the same directory replaces or removes the files
    an earlier one wrote (listed in DIR/.envspec-render) while they are unchanged, and
    never touches any other file; Secret files are written with mode 0600.

    \b
    Examples:
      envspec render
      envspec render --id pr-42 --tests -o json
      envspec render --show-secrets | kubectl apply -f -
      envspec render --show-secrets --out-dir manifests/ && kubectl apply -f manifests/
    """
    if out_dir is not None and not str(out_dir).strip():
        raise click.BadParameter("must name a directory", param_hint="--out-dir")
    valid = load_spec(file, os.environ)
    secrets = generate_secrets(plan_slots(valid)) if show_secrets else None
    plan = build_plan(valid, env_id=env_id, secrets=secrets, include_tests=include_tests)
    if out_dir is not None:
        result = write_directory(plan, Path(out_dir), output)
        for path in result.kept:
            click.echo(
                f"kept {display_path(path)}: changed since envspec wrote it (no longer managed by render)", err=True
            )
        removed = f", removed {len(result.removed)} of an earlier render" if result.removed else ""
        click.echo(f"wrote {len(result.written)} files to {display_path(out_dir)}{removed}", err=True)
        return
    click.echo(plan_text(plan, output), nl=False)
