"""The start-up: what kr8s, httpx and pydantic import for features envspec never uses is loaded
on first use (and then works), and the garbage collector is paused until the operation starts.

Each check runs in a fresh interpreter: whether a module is loaded depends on what the
process imported before, and the test process has imported nearly everything.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from envspec.kube import CLIENT_UNUSED

DEFERRED = [name for name, _ in CLIENT_UNUSED]


def run_fresh(code: str) -> object:
    """Run `code` in a new interpreter (with NAMES, the deferred modules) and decode its last line."""
    script = f"NAMES = {DEFERRED!r}\n" + textwrap.dedent(code)
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120)
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_the_client_modules_import_without_executing_the_unused_ones() -> None:
    loaded = run_fresh(
        """
        import json, sys
        import envspec.kube.client, envspec.kube.ssa, envspec.kube.informer, envspec.kube.logs
        print(json.dumps({n: type(sys.modules.get(n)).__name__ for n in NAMES}))
        """
    )
    assert loaded == dict.fromkeys(DEFERRED, "DeferredModule")


def test_an_up_imports_none_of_them() -> None:
    # The command line's modules for an `up`, as the entry point imports them.
    loaded = run_fresh(
        """
        import json, sys
        import envspec.cli.main, envspec.operations.up, envspec.operations.spec
        from envspec.deferred import is_deferred
        print(json.dumps([n for n in NAMES if not is_deferred(n)]))
        """
    )
    assert loaded == []


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        ("import jsonpath; value = jsonpath.findall('$.a[*]', {'a': [1, 2]})", [1, 2]),
        ("import httpx_ws; value = httpx_ws.aconnect_ws.__name__", "aconnect_ws"),
        ("from cryptography import x509; value = x509.NameOID.COMMON_NAME.dotted_string", "2.5.4.3"),
        ("import httpx; value = callable(httpx.main)", True),
    ],
)
def test_the_first_use_loads_the_real_module(statement: str, expected: object) -> None:
    result = run_fresh(
        f"""
        import json, sys
        import envspec.kube.client
        {statement}
        print(json.dumps(value))
        """
    )
    assert result == expected


def test_kr8s_reads_of_a_deferred_module_see_the_real_one() -> None:
    # kr8s bound the stand-in at import; after the first use its attributes are the real ones.
    same = run_fresh(
        """
        import json, sys
        import envspec.kube.client
        import kr8s._config
        import jsonpath
        jsonpath.findall('$.a', {'a': 1})
        print(json.dumps(kr8s._config.jsonpath.findall is sys.modules['jsonpath'].findall))
        """
    )
    assert same is True


def test_a_module_imported_already_is_left_alone() -> None:
    kept = run_fresh(
        """
        import json, sys
        import jsonpath
        from envspec.deferred import defer
        print(json.dumps([defer('jsonpath'), type(sys.modules['jsonpath']).__name__]))
        """
    )
    assert kept == [False, "module"]


def test_a_module_not_installed_is_not_faked() -> None:
    result = run_fresh(
        """
        import json, sys
        from envspec.deferred import defer
        print(json.dumps([defer('envspec_no_such_module'), 'envspec_no_such_module' in sys.modules]))
        """
    )
    assert result == [False, False]


def test_the_command_line_turns_pydantic_plugins_off_so_reading_a_spec_skips_the_metadata_scan() -> None:
    result = run_fresh(
        """
        import json, os, sys
        os.environ.pop("PYDANTIC_DISABLE_PLUGINS", None)
        import envspec.cli.main
        import envspec.pipeline, envspec.model
        from envspec.deferred import is_deferred
        print(json.dumps([os.environ["PYDANTIC_DISABLE_PLUGINS"], is_deferred("importlib.metadata")]))
        """
    )
    assert result == ["__all__", True]


def test_a_users_pydantic_plugin_setting_is_kept_and_then_the_metadata_is_read() -> None:
    result = run_fresh(
        """
        import json, os, sys
        os.environ["PYDANTIC_DISABLE_PLUGINS"] = "logfire"
        import envspec.cli.main
        import envspec.model
        from envspec.deferred import is_deferred
        print(json.dumps([os.environ["PYDANTIC_DISABLE_PLUGINS"], is_deferred("importlib.metadata")]))
        """
    )
    assert result == ["logfire", False]


def test_the_collector_paused_for_the_start_up_runs_again_once_the_operation_starts() -> None:
    # As entry_point leaves it: paused; an operation's body then runs with it on and the
    # start-up's objects frozen out of its sight.
    seen = run_fresh(
        """
        import gc, json
        gc.disable()
        from envspec.cli.run import run

        async def body(events):
            return [gc.isenabled(), gc.get_freeze_count() > 0]

        print(json.dumps(run("probe", body, output="json")))
        """
    )
    assert seen == [True, True]


def test_the_entry_point_pauses_the_collector_until_then() -> None:
    seen = run_fresh(
        """
        import atexit, gc, json
        from envspec.cli import main as cli
        states = []
        cli.main = lambda: states.append(gc.isenabled())  # the command, as click would run it
        atexit.register(lambda: print(json.dumps(states)))  # entry_point ends the process with os._exit
        cli.entry_point()
        """
    )
    assert seen == [False]
