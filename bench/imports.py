"""Import time of envspec's command paths (printed figures, not a test).

    python bench/imports.py [--runs 7] [--top 12]

Each path runs in a fresh interpreter under `python -X importtime`, several times:

- main:   `import envspec.cli.main` (what every command pays before click parses argv);
- help:   `envspec --help`, the whole process;
- render: `envspec render -f examples/fullstack/maestro-env.yaml`, the whole process;
- up:     the modules `envspec up` imports, from `cli/up.py` to the runner and the
          kr8s client, without a cluster (so it can run anywhere).

With KUBECONFIG set (as `make bench` sets it), `up-real` also runs `envspec up` of
examples/fullstack in a fresh namespace, deleted afterwards, so every import made
while the command runs is counted too.

Total = the sum of the cumulative times of the top-level imports, leaving out what the
interpreter imports before running any code (`python -c pass`). Packages = self time
summed per top-level package, the median over the runs. Figures are also printed as
`FIGURE imports.<path>.total_ms <value>` lines. Target (issue 8): the up path <= 150 ms.

The development venv has `rich` and `pygments` (import-linter and pytest need them);
with them present httpx imports its own command-line module at `import httpx`. The
`prod` rows run the same path with both hidden, as in an install without the test
extras (`pip install envspec`), so both figures are shown.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FULLSTACK = REPO / "examples" / "fullstack" / "maestro-env.yaml"

# What `envspec up` imports: cli/up.py's module and function imports, and what
# cli/run.py's `run` and the operation import on their way to the cluster.
UP_MODULES = (
    "envspec.cli.main",
    "envspec.cli.up",
    "envspec.operations.spec",
    "envspec.operations.up",
    "envspec.runner",
    "envspec.kube.client",
    "envspec.operations.run",
    "envspec.sinks",
)

# Shown with the cumulative time of their import (what they pulled in first, included);
# httpx._main is httpx's command line, imported by `import httpx` when rich is installed.
NAMED_MODULES = ("kr8s", "httpx", "httpx._main", "pydantic", "envspec.model", "ruamel.yaml", "click", "anyio")

# Prepended to a path's code to hide the packages only the test extras bring.
WITHOUT_TEST_EXTRAS = "import sys; sys.modules.update(rich=None, pygments=None); "


@dataclass
class CommandPath:
    name: str
    code: Callable[[int], str]  # run number -> the Python run with -c
    totals_ms: list[float] = field(default_factory=list)
    package_ms: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    named_ms: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))


def same_code(code: str) -> Callable[[int], str]:
    return lambda _run: code


def importtime_lines(code: str, env: dict[str, str]) -> list[tuple[int, int, int, str]]:
    """(self us, cumulative us, depth, module) of every import `python -X importtime -c code` made."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        tail = "\n".join(line for line in done.stderr.splitlines() if not line.startswith("import time:"))
        raise SystemExit(f"python -c {code!r} failed ({done.returncode}): {tail[-2000:]}")
    prefix = "import time:"
    rows = []
    for line in done.stderr.splitlines():
        if not line.startswith(prefix) or "[us]" in line:
            continue
        self_us, cumulative_us, name = line[len(prefix) :].split("|", 2)
        # One space before a top-level module, two more per level of nesting.
        depth = (len(name) - len(name.lstrip(" ")) - 1) // 2
        rows.append((int(self_us), int(cumulative_us), depth, name.strip()))
    return rows


def measure(path: CommandPath, run: int, startup: set[str], env: dict[str, str]) -> None:
    rows = importtime_lines(path.code(run), env)
    total = sum(cumulative for _, cumulative, depth, name in rows if depth == 0 and name not in startup)
    path.totals_ms.append(total / 1000)
    packages: dict[str, int] = defaultdict(int)
    for self_us, _, _, name in rows:
        if name not in startup:
            packages[name.split(".")[0]] += self_us
    for package, self_us in packages.items():
        path.package_ms[package].append(self_us / 1000)
    for _, cumulative, _, name in rows:
        if name in NAMED_MODULES and cumulative > 0:  # 0: a refused import (the prod rows' httpx._main)
            path.named_ms[name].append(cumulative / 1000)


def delete_environments(env_ids: list[str], env: dict[str, str]) -> None:
    from envspec.pipeline import identity, load_spec

    spec = load_spec(str(FULLSTACK), env)
    namespaces = [identity(spec, env_id).namespace for env_id in env_ids]
    subprocess.run(
        ["kubectl", "delete", "namespace", *namespaces, "--ignore-not-found", "--wait=true", "--timeout=600s"],
        capture_output=True,
        env=env,
        timeout=900,
        check=False,
    )


def envspec_code(argv: list[str]) -> str:
    # As the console script does; SystemExit(0) is how click ends a successful command.
    return f"import sys; sys.argv = {['envspec', *argv]!r}; from envspec.cli.main import main; main()"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7, help="runs per path (default 7)")
    parser.add_argument("--top", type=int, default=12, help="packages shown per path (default 12)")
    arguments = parser.parse_args()
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # an installed envspec has its bytecode compiled
    startup = {name for _, _, _, name in importtime_lines("pass", env)}

    help_code = envspec_code(["--help"])
    up_code = "import " + ", ".join(UP_MODULES)
    paths = [
        CommandPath("main", same_code("import envspec.cli.main")),
        CommandPath("help", same_code(help_code)),
        CommandPath("render", same_code(envspec_code(["render", "-f", str(FULLSTACK)]))),
        CommandPath("up", same_code(up_code)),
        CommandPath("help-prod", same_code(WITHOUT_TEST_EXTRAS + help_code)),
        CommandPath("up-prod", same_code(WITHOUT_TEST_EXTRAS + up_code)),
    ]
    env_ids = [f"imp{run}{secrets.token_hex(2)}" for run in range(arguments.runs)]
    if env.get("KUBECONFIG"):
        paths.append(
            CommandPath(
                "up-real", lambda run: envspec_code(["up", "-f", str(FULLSTACK), "--id", env_ids[run], "-o", "json"])
            )
        )

    with tempfile.TemporaryDirectory(prefix="envspec-imports-") as scratch:
        env["ENVSPEC_LOG_DIR"] = scratch
        try:
            for run in range(arguments.runs):
                for path in paths:  # interleaved, so load on the machine hits every path alike
                    measure(path, run, startup, env)
        finally:
            if env.get("KUBECONFIG"):
                delete_environments(env_ids, env)

    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"import time per command path (median of {arguments.runs} runs, ms; load average {load})")
    print("  self time per top-level package; cumulative: the import of each named module, what it pulled in included")
    figures = []
    for path in paths:
        if not path.totals_ms:
            continue
        total = statistics.median(path.totals_ms)
        spread = f"{min(path.totals_ms):.0f}-{max(path.totals_ms):.0f}"
        top = sorted(((statistics.median(v), k) for k, v in path.package_ms.items()), reverse=True)
        shown = ", ".join(f"{name} {ms:.0f}" for ms, name in top[: arguments.top])
        named = ", ".join(
            f"{name} {statistics.median(path.named_ms[name]):.0f}" for name in NAMED_MODULES if path.named_ms[name]
        )
        print(f"  {path.name:<10} {total:7.1f} ms  (runs {spread})  {shown}")
        if named:
            print(f"  {'':<10} cumulative: {named}")
        figures.append(f"FIGURE imports.{path.name}.total_ms {total:.1f}")
    print("\n".join(figures))


if __name__ == "__main__":
    main()
