"""The `envspec` command group.

Subcommands live one per module in this package and are imported only when
invoked, so `envspec render` never pays for kr8s, redis or watchfiles. What only
the crash path needs (logging, tempfile, traceback) is imported there: every
command pays for this module's imports.
"""

from __future__ import annotations

import atexit
import gc
import importlib
import os
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import click

from envspec import __version__
from envspec.cli.options import discard_stdout
from envspec.deferred import defer
from envspec.errors import EnvspecError, ExitCode, SpecError

# command name -> (module under envspec.cli, one-line help shown in `envspec --help`)
COMMANDS: dict[str, tuple[str, str]] = {
    "init": ("init", "Write a starter maestro-env.yaml."),
    "validate": ("validate", "Check a spec and report every problem with its location."),
    "render": ("render", "Print the Kubernetes manifests a spec compiles to, in apply order."),
    "schema": ("schema", "Print the JSON Schema of maestro-env.yaml."),
    "up": ("up", "Create or update an environment on the cluster and wait until it is ready."),
    "down": ("down", "Delete an environment and wait until it is gone."),
    "status": ("status", "Show every object of an environment with its readiness."),
    "ls": ("ls", "List the environments on the cluster."),
    "diff": ("diff", "Show what `up` would change on the cluster."),
    "extend": ("extend", "Push an environment's expiry to now + TTL."),
    "gc": ("gc", "Delete expired environments."),
    "watch": ("watch", "Bring an environment up and reapply on every spec change."),
    "worker": ("worker", "Serve environment requests from a Redis stream."),
    "test": ("test", "Run the spec's tests as Jobs in the environment; summary, JUnit, exit code."),
    "serve": ("serve", "Serve the REST API of the k8s-execution service (port 8004)."),
    "logs": ("logs", "Print the logs of a service, a database or a test's last run."),
    "cluster": ("cluster", "Manage the local Kubernetes cluster for development and CI."),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name, (module, _) in COMMANDS.items() if _module_exists(module)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None or not _module_exists(entry[0]):
            return None
        module = importlib.import_module(f"envspec.cli.{entry[0]}")
        command: click.Command = module.command
        return command

    def invoke(self, ctx: click.Context) -> object:
        # User errors are reported here, not only in main(), so that the group behaves the
        # same when driven by other click tooling (CliRunner in the tests, for one).
        try:
            return super().invoke(ctx)
        except EnvspecError as exc:
            ctx.exit(report_user_error(exc))

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Short help comes from COMMANDS so `envspec --help` imports nothing heavy.
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def report_user_error(exc: EnvspecError) -> int:
    """Print a user error the one way envspec prints them; its exit code."""
    click.echo(exc.message if isinstance(exc, SpecError) else f"error: {exc.message}", err=True)
    return int(exc.exit_code)


def _module_exists(module: str) -> bool:
    return (Path(__file__).parent / f"{module}.py").exists()


EPILOG = """\b
Exit codes:
  0   success
  1   invalid spec, bad input or refused operation (`diff`: differences found)
  2   bad command line
  3   the Kubernetes API refused a request or could not be reached
  4   an object did not become ready before the deadline, or failed
      (`test`: the environment is not on the cluster or not ready)
  5   `test`: at least one test failed or could not run
  6   `test`: a test timed out, and none failed otherwise
  70  internal error (a bug; the message names a log file)
  130 interrupted
"""


@click.group(cls=LazyGroup, epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="envspec")
def cli() -> None:
    """envspec compiles maestro-env.yaml into an ephemeral, isolated Kubernetes
    test environment and manages its life: render, up, watch, test, gc.

    \b
    Start with:
      envspec init              write a starter maestro-env.yaml
      envspec validate          check it
      envspec render            see the manifests it compiles to
      envspec cluster up        start a local cluster (no Docker needed)
      envspec up                create the environment and wait until ready
    """


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: run the CLI; user errors exit with their code, bugs with a log."""
    sys.exit(_flush_output(_run(argv)))


def _run(argv: Sequence[str] | None) -> int:
    try:
        # Without standalone mode click returns the code of a `ctx.exit(code)` instead of exiting.
        code = cli.main(args=list(argv) if argv is not None else None, prog_name="envspec", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.Abort:
        click.echo("interrupted", err=True)
        return ExitCode.INTERRUPTED
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return ExitCode.INTERRUPTED
    except EnvspecError as exc:  # raised outside a command (while resolving one, say)
        return report_user_error(exc)
    except BrokenPipeError:
        # `envspec render | head`: the reader left; not an error of ours.
        discard_stdout()
        return ExitCode.OK
    except OSError as exc:
        if not _failed_writing_stdout(exc):
            return _crash(exc)
        discard_stdout()
        click.echo(f"error: cannot write to standard output: {exc.strerror or exc}", err=True)
        return ExitCode.USER_ERROR
    except Exception as exc:
        return _crash(exc)
    return code if isinstance(code, int) else ExitCode.OK


def _failed_writing_stdout(exc: OSError) -> bool:
    """Whether `exc` is standard output refusing a write (`> /dev/full`, a full disk): click
    flushes every echo, so that shows up in whichever command printed, as an OSError raised
    in click's `echo` while writing to file descriptor 1."""
    innermost = exc.__traceback__
    while innermost is not None and innermost.tb_next is not None:
        innermost = innermost.tb_next
    if innermost is None or innermost.tb_frame.f_code.co_name != "echo":
        return False
    stream = innermost.tb_frame.f_locals.get("file")
    try:
        return stream is not None and stream.fileno() == sys.__stdout__.fileno()  # type: ignore[union-attr]
    except (OSError, ValueError, AttributeError):
        return False


def _crash(exc: BaseException) -> int:
    log_path = _write_crash_log()
    click.echo(f"internal error: {type(exc).__name__}: {exc} (details in {log_path})", err=True)
    return ExitCode.INTERNAL


def _flush_output(code: int) -> int:
    """Flush standard output while a failure can still be reported: Python's own flush at
    exit would print an "Exception ignored" warning and exit 120."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        discard_stdout()
    except OSError as exc:
        discard_stdout()
        click.echo(f"error: cannot write to standard output: {exc.strerror or exc}", err=True)
        return code or ExitCode.USER_ERROR
    return code


def entry_point() -> NoReturn:
    """The process's entry point (console script, `python -m envspec`): `main`, then a quick exit.

    A normal interpreter exit then frees every module and object one by one: for the `up`
    path (kr8s, httpx, pydantic and the model) that is 0.1-0.3 s after the command has
    finished, a tenth of an `up` of a small environment. So once the command is done and
    its output flushed, the process ends at once, as mypy's does: the atexit handlers still
    run, and when that cannot be done safely (output to a closed pipe, another live thread)
    the exit is the normal one.

    The cyclic garbage collector is paused until the command starts its work
    (`start_collecting`): see there.
    """
    gc.disable()
    try:
        main()
    except SystemExit as exc:
        code = exc.code
    else:
        code = ExitCode.OK
    if not isinstance(code, int):  # sys.exit("message") or sys.exit(None) from click
        sys.exit(code)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):  # a reader that left, a closed stream: the normal exit handles it
        sys.exit(code)
    others = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
    if others:
        sys.exit(code)  # joins them, as it would have
    atexit._run_exitfuncs()
    os._exit(code)


def start_collecting() -> None:
    """The start-up is over: what it made lives as long as the process; collect garbage from here on.

    Start-up makes a great many objects and next to no cyclic garbage (modules, classes,
    pydantic's validators, the compiled plan), and the collector, set off by the count of
    allocations, would walk them again and again: 5% of the `up` path's import time.
    `entry_point` pauses it; the command's way into its work (`envspec.cli.run`, `serve`,
    the `cluster` group) calls this, which moves everything made so far out of the collector's sight
    (`gc.freeze`) and turns it back on, so the operation, however long it runs, is
    collected as usual. Idempotent; a no-op in-process (tests), where nothing paused it.
    """
    gc.freeze()
    gc.enable()


def skip_pydantic_plugins() -> None:
    """envspec's models run without pydantic plugins (instrumentation a library user may install).

    Looking for plugins reads the metadata of every installed distribution the first time a
    model is defined, and importing `importlib.metadata` to do so is 20 ms of every command
    that reads a spec. PYDANTIC_DISABLE_PLUGINS is pydantic's documented switch; a value the
    user set is kept, and then the module is loaded when pydantic asks for it.
    """
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    defer("importlib.metadata", ("entry_points",))


# As the command line is imported: before any command imports pydantic.
skip_pydantic_plugins()


def _write_crash_log() -> Path:
    import logging
    import tempfile
    import traceback

    directory = Path(os.environ.get("ENVSPEC_LOG_DIR", tempfile.gettempdir()))
    directory.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix="envspec-crash-", suffix=".log", dir=directory)
    with os.fdopen(fd, "w") as log:
        log.write(traceback.format_exc())
    logging.getLogger("envspec").debug("crash log written to %s", name)
    return Path(name)
