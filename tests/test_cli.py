"""The compiler commands through click's CliRunner, plus the installed `envspec` in a subprocess."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result
from ruamel.yaml import YAML

from envspec import __version__
from envspec.cli.main import cli, main
from envspec.render import GENERATED_HEADER, INDEX_NAME

REPO = Path(__file__).resolve().parent.parent
QUICKSTART = str(REPO / "examples" / "quickstart" / "maestro-env.yaml")
FULLSTACK = str(REPO / "examples" / "fullstack" / "maestro-env.yaml")
POLYGLOT = str(REPO / "examples" / "polyglot-db" / "maestro-env.yaml")
BROKEN = "apiVersion: envspec/v1\nname: demo\nservices:\n  api:\n    image: app\n    replicas: -1\n"
# Only the variables the examples read; the caller's environment must not change results.
CLEAN_ENV: dict[str, str | None] = dict.fromkeys(
    (
        "FEATURE_FLAGS",
        "REDIS_URL",
        "K8S_TTL_MINUTES",
        "K8S_NAMESPACE_PREFIX",
        "DEFAULT_CPU_LIMIT",
        "DEFAULT_MEMORY_LIMIT",
    )
)


def run(*args: str, input: str | None = None, env: dict[str, str | None] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=input, env={**CLEAN_ENV, **(env or {})}, catch_exceptions=False)


def load_all(text: str) -> list[Any]:
    return list(YAML(typ="safe", pure=True).load_all(io.StringIO(text)))


def rendered_files(directory: Path) -> list[Path]:
    """The manifests of an --out-dir, without render's index of them."""
    return sorted(p for p in directory.iterdir() if p.name != INDEX_NAME)


def secret_values(manifests: list[dict[str, Any]]) -> list[str]:
    return [
        value
        for manifest in manifests
        if manifest["kind"] == "Secret"
        for key, value in manifest["stringData"].items()
        if key.endswith("password")
    ]


# --- validate --------------------------------------------------------------------------------


def test_validate_ok() -> None:
    result = run("validate", "-f", FULLSTACK)
    assert result.exit_code == 0
    assert result.stdout == f"{FULLSTACK}: OK: environment 'fullstack' (2 databases, 2 services, 2 tests; ttl 2h)\n"
    assert result.stderr == ""


def test_validate_default_file_is_maestro_env_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    missing = run("validate")
    assert missing.exit_code == 1
    assert missing.stderr == (
        "error: maestro-env.yaml: no such file (create one with `envspec init`, or pass -f FILE)\n"
    )
    (tmp_path / "maestro-env.yaml").write_text(Path(QUICKSTART).read_text(encoding="utf-8"), encoding="utf-8")
    assert run("validate").exit_code == 0


def test_validate_invalid_spec_lists_located_problems_on_stderr(tmp_path: Path) -> None:
    spec = tmp_path / "maestro-env.yaml"
    spec.write_text(BROKEN + "    dependsOn: [nope]\n    depends_on: []\n", encoding="utf-8")
    result = run("validate", "-f", str(spec))
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"{spec}:6:15: services.api.replicas: must be an integer between 0 and 2147483647",
        f"{spec}:8:5: services.api.depends_on: unknown key 'depends_on'; did you mean 'dependsOn'?",
        "2 problems found",
    ]
    assert "Traceback" not in result.output


def test_validate_reads_stdin() -> None:
    ok = run("validate", "-f", "-", input=Path(QUICKSTART).read_text(encoding="utf-8"))
    assert ok.exit_code == 0
    assert ok.stdout.startswith("<stdin>: OK: environment 'quickstart'")
    bad = run("validate", "-f", "-", input=BROKEN)
    assert bad.exit_code == 1
    assert (
        bad.stderr.splitlines()[0] == "<stdin>:6:15: services.api.replicas: must be an integer between 0 and 2147483647"
    )
    syntax = run("validate", "-f", "-", input="a: [\n")
    assert syntax.exit_code == 1
    assert re.match(r"<stdin>:2:1: YAML syntax error: ", syntax.stderr)


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("directory", "is a directory"),
        ("binary", "not UTF-8"),
    ],
)
def test_unreadable_inputs_are_user_errors(tmp_path: Path, setup: str, message: str) -> None:
    if setup == "directory":
        target = tmp_path
    else:
        target = tmp_path / "bin.yaml"
        target.write_bytes(b"\xff\xfe\x00name")
    result = run("validate", "-f", str(target))
    assert result.exit_code == 1
    if setup == "binary":  # a located problem, like every other problem of a spec's text
        assert result.stderr == f"{target}:1:1: not UTF-8 text: byte 0xff (invalid start byte)\n1 problem found\n"
    else:
        assert result.stderr.startswith("error: ") and message in result.stderr
    assert "Traceback" not in result.output


def test_validate_uses_the_process_environment() -> None:
    text = "apiVersion: envspec/v1\nname: demo\nservices:\n  a: {image: '${env.ENVSPEC_TEST_TAG}'}\n"
    assert run("validate", "-f", "-", input=text).exit_code == 1
    assert run("validate", "-f", "-", input=text, env={"ENVSPEC_TEST_TAG": "x"}).exit_code == 0
    ttl = run("validate", "-f", "-", input="apiVersion: envspec/v1\nname: d\n", env={"K8S_TTL_MINUTES": "90"})
    assert ttl.stdout.endswith("ttl 1h30m)\n")


# --- usage errors, help, version ---------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["render", "--bogus"],
        ["render", "-o", "xml"],
        ["nosuchcommand"],
        ["validate", "extra-argument"],
        ["render", "-f"],
    ],
)
def test_usage_errors_exit_2(args: list[str]) -> None:
    result = run(*args)
    assert result.exit_code == 2
    assert "Usage:" in result.stderr or "Error:" in result.stderr


def test_version() -> None:
    result = run("--version")
    assert result.exit_code == 0
    assert result.stdout == f"envspec, version {__version__}\n"


def test_help_of_the_group_lists_the_commands_and_exit_codes() -> None:
    result = run("--help")
    assert result.exit_code == 0
    for name in ("init", "validate", "render", "schema"):
        assert re.search(rf"^\s+{name}\s+\S", result.stdout, re.M), name
    assert "Exit codes:" in result.stdout
    assert run("-h").stdout == result.stdout


def test_help_of_every_command() -> None:
    names = cli.list_commands(click.Context(cli))
    assert {"init", "validate", "render", "schema"} <= set(names)
    for name in names:
        result = run(name, "--help")
        assert result.exit_code == 0, (name, result.output)
        assert result.stdout.startswith(f"Usage: cli {name}") or result.stdout.startswith("Usage: "), name
        # a real description, not just the usage line
        assert len(result.stdout.splitlines()) > 4, name


def test_render_help_documents_every_option() -> None:
    text = run("render", "--help").stdout
    for option in ("-f, --file", "--id", "--tests", "-o, --output", "--out-dir", "--show-secrets"):
        assert option in text


# --- main(): the real entry point's exit codes --------------------------------------------------


def exit_code_of_main(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(args)
    out, err = capsys.readouterr()
    code = info.value.code
    return (code if isinstance(code, int) else 0), out, err


def test_main_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "broken.yaml"
    spec.write_text(BROKEN, encoding="utf-8")
    assert exit_code_of_main(["validate", "-f", QUICKSTART], capsys)[0] == 0
    code, out, err = exit_code_of_main(["validate", "-f", str(spec)], capsys)
    assert (code, out) == (1, "")
    assert err.startswith(f"{spec}:6:15: services.api.replicas: must be an integer between 0 and 2147483647\n")
    code, _, err = exit_code_of_main(["render", "-f", str(tmp_path / "missing.yaml")], capsys)
    assert code == 1 and err.startswith("error: ")
    assert exit_code_of_main(["render", "--bogus"], capsys)[0] == 2
    assert exit_code_of_main(["render", "-f", QUICKSTART, "--id", "Bad_Id"], capsys)[0] == 1
    assert exit_code_of_main(["--version"], capsys)[0] == 0


# --- render ----------------------------------------------------------------------------------


def test_render_prints_multi_document_yaml_in_plan_order() -> None:
    result = run("render", "-f", QUICKSTART)
    assert result.exit_code == 0
    assert result.stdout.startswith("---\napiVersion: v1\nkind: Namespace\n")
    documents = load_all(result.stdout)
    assert [(d["kind"], d["metadata"]["name"]) for d in documents] == [
        ("Namespace", "envspec-quickstart"),
        ("LimitRange", "envspec-defaults"),
        ("NetworkPolicy", "envspec-isolation"),
        ("ResourceQuota", "envspec-quota"),
        ("Secret", "db-credentials"),
        ("Service", "app"),
        ("Service", "db"),
        ("StatefulSet", "db"),
        ("Deployment", "app"),
    ]
    assert documents[4]["data"]["password"] == "<generated-at-apply>"
    # identical runs give identical output
    assert run("render", "-f", QUICKSTART).stdout == result.stdout


def test_render_matches_the_golden_file_with_tests() -> None:
    result = run("render", "-f", FULLSTACK, "--tests")
    assert result.stdout == (REPO / "tests" / "golden" / "fullstack.yaml").read_text(encoding="utf-8")


def test_render_id_and_tests() -> None:
    result = run("render", "-f", POLYGLOT, "--id", "pr-42", "--tests")
    documents = load_all(result.stdout)
    assert documents[0]["metadata"]["name"] == "envspec-polyglot-db-pr-42"
    assert {d["metadata"]["labels"]["envspec.dev/environment"] for d in documents} == {"polyglot-db-pr-42"}
    assert documents[-1]["kind"] == "Job"
    assert all(d["kind"] != "Job" for d in load_all(run("render", "-f", POLYGLOT).stdout))


def test_render_bad_id() -> None:
    result = run("render", "-f", QUICKSTART, "--id", "Not_Valid")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: --id 'Not_Valid': ")
    assert result.stdout == ""


def test_render_json_is_a_v1_list() -> None:
    result = run("render", "-f", FULLSTACK, "-o", "json", "--tests")
    assert result.exit_code == 0
    document = json.loads(result.stdout)
    assert document["apiVersion"] == "v1"
    assert document["kind"] == "List"
    assert document["items"] == load_all(run("render", "-f", FULLSTACK, "--tests").stdout)


def test_render_invalid_spec_from_stdin() -> None:
    result = run("render", "-f", "-", input=BROKEN)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith(
        "<stdin>:6:15: services.api.replicas: must be an integer between 0 and 2147483647\n"
    )


def test_render_out_dir(tmp_path: Path) -> None:
    out = tmp_path / "manifests"
    result = run("render", "-f", FULLSTACK, "--tests", "--out-dir", str(out))
    assert result.exit_code == 0
    assert result.stdout == ""
    expected = load_all(run("render", "-f", FULLSTACK, "--tests").stdout)
    files = rendered_files(out)  # `kubectl apply -f DIR` reads files in lexical order
    assert result.stderr == f"wrote {len(expected)} files to {out}\n"
    assert [p.name for p in files][:3] == [
        "000-namespace-quality-fabric-fullstack.yaml",
        "001-limitrange-envspec-defaults.yaml",
        "002-networkpolicy-envspec-isolation.yaml",
    ]
    loaded = []
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert text.startswith(GENERATED_HEADER + "\n")
        (document,) = load_all(text)
        loaded.append(document)
        assert path.name.endswith(f"-{document['kind'].lower()}-{document['metadata']['name']}.yaml")
    assert loaded == expected


def test_render_out_dir_replaces_its_own_files_and_keeps_foreign_ones(tmp_path: Path) -> None:
    out = tmp_path / "manifests"
    out.mkdir()
    foreign = {
        "README.md": "notes\n",
        "000-namespace-mine.yaml": "apiVersion: v1\nkind: Namespace\nmetadata: {name: mine}\n",
        "999-configmap-extra.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: extra}\n",
        "900-thing-x.json": '{"kind": "ConfigMap"}\n',
    }
    for name, text in foreign.items():
        (out / name).write_text(text, encoding="utf-8")
    assert run("render", "-f", FULLSTACK, "--tests", "--out-dir", str(out)).exit_code == 0
    with_tests = {p.name for p in rendered_files(out)} - set(foreign)
    assert any("-job-" in name for name in with_tests)
    # a second render without tests removes the Job files it wrote before
    assert run("render", "-f", FULLSTACK, "--out-dir", str(out)).exit_code == 0
    generated = {p.name for p in rendered_files(out)} - set(foreign)
    assert not any("-job-" in name for name in generated)
    assert len(generated) == len(load_all(run("render", "-f", FULLSTACK).stdout))
    for name, text in foreign.items():
        assert (out / name).read_text(encoding="utf-8") == text
    # a smaller spec replaces the bigger one's files
    assert run("render", "-f", QUICKSTART, "--out-dir", str(out)).exit_code == 0
    generated = {p.name for p in rendered_files(out)} - set(foreign)
    assert len(generated) == 9
    assert not any("fullstack" in name or "worker" in name for name in generated)
    # JSON output is recognised as ours too
    assert run("render", "-f", QUICKSTART, "-o", "json", "--out-dir", str(out)).exit_code == 0
    assert run("render", "-f", QUICKSTART, "--out-dir", str(out)).exit_code == 0
    assert not [p for p in out.glob("*.json") if p.name not in foreign]


def test_render_out_dir_keeps_plan_order_past_a_thousand_objects(tmp_path: Path) -> None:
    lines = ["apiVersion: envspec/v1", "name: huge", "resources:", "  quota: {pods: 2000}", "services:"]
    lines += [f"  s{i:04d}: {{image: x, port: 80}}" for i in range(520)]
    spec = tmp_path / "huge.yaml"
    spec.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    assert run("render", "-f", str(spec), "--out-dir", str(out)).exit_code == 0
    names = [p.name for p in rendered_files(out)]
    assert len(names) == 4 + 520 * 2
    assert names[0] == "0000-namespace-envspec-huge.yaml"
    assert names[-1] == "1043-deployment-s0519.yaml"
    kinds = [name.split("-")[1] for name in names]
    assert (
        kinds
        == ["namespace", "limitrange", "networkpolicy", "resourcequota"] + ["service"] * 520 + ["deployment"] * 520
    )
    # a smaller plan written later removes every file of the bigger one
    assert run("render", "-f", QUICKSTART, "--out-dir", str(out)).exit_code == 0
    assert len(rendered_files(out)) == 9


def test_render_out_dir_that_is_a_file(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x", encoding="utf-8")
    result = run("render", "-f", QUICKSTART, "--out-dir", str(target))
    assert result.exit_code in (1, 2)
    assert "Traceback" not in result.output


def test_render_show_secrets(tmp_path: Path) -> None:
    first = load_all(run("render", "-f", POLYGLOT, "--tests", "--show-secrets").stdout)
    second = load_all(run("render", "-f", POLYGLOT, "--tests", "--show-secrets").stdout)
    passwords = secret_values(first)
    assert len(passwords) == 3  # orders password and root-password, catalogdb password
    assert all(len(p) >= 24 for p in passwords)
    assert "<generated-at-apply>" not in json.dumps(first)
    assert len(set(passwords)) == len(passwords)
    assert not set(passwords) & set(secret_values(second))
    for document in first:
        text = json.dumps(document)
        if document["kind"] != "Secret":
            assert not any(p in text for p in passwords), document["metadata"]["name"]
    orders = next(d for d in first if d["metadata"]["name"] == "orders-credentials")
    assert orders["stringData"]["password"] in orders["stringData"]["url"]
    # and the same holds for files written with --out-dir
    out = tmp_path / "out"
    assert run("render", "-f", FULLSTACK, "--show-secrets", "--out-dir", str(out)).exit_code == 0
    for path in rendered_files(out):
        (document,) = load_all(path.read_text(encoding="utf-8"))
        if document["kind"] == "Secret":
            continue
        text = path.read_text(encoding="utf-8")
        for secret in out.glob("*-secret-*.yaml"):
            (secret_document,) = load_all(secret.read_text(encoding="utf-8"))
            for value in secret_values([secret_document]):
                assert value not in text


# --- schema and init ----------------------------------------------------------------------------


def test_schema_command() -> None:
    result = run("schema")
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert {"apiVersion", "name", "services", "databases", "tests"} <= set(schema["properties"])


def test_init_writes_a_valid_starter_with_the_schema_comment(tmp_path: Path) -> None:
    target = tmp_path / "maestro-env.yaml"
    result = run("init", "-f", str(target))
    assert result.exit_code == 0
    assert str(target) in result.stdout
    text = target.read_text(encoding="utf-8")
    first = text.splitlines()[0]
    assert first.startswith("# yaml-language-server: $schema=")
    assert Path(first.split("$schema=", 1)[1]).name == "maestro-env.schema.json"
    assert text.count("yaml-language-server") == 1
    assert run("validate", "-f", str(target)).exit_code == 0


def test_init_default_file_in_the_current_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert run("init").exit_code == 0
    assert (tmp_path / "maestro-env.yaml").is_file()


def test_init_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    target = tmp_path / "maestro-env.yaml"
    target.write_text("mine\n", encoding="utf-8")
    refused = run("init", "-f", str(target))
    assert refused.exit_code == 1
    assert "already exists" in refused.stderr and "--force" in refused.stderr
    assert target.read_text(encoding="utf-8") == "mine\n"
    forced = run("init", "-f", str(target), "--force", "--example", "fullstack", "--schema-url", "https://x/s.json")
    assert forced.exit_code == 0
    text = target.read_text(encoding="utf-8")
    assert text.startswith("# yaml-language-server: $schema=https://x/s.json\n")
    assert "name: fullstack" in text
    assert run("validate", "-f", str(target)).exit_code == 0


def test_init_unknown_example(tmp_path: Path) -> None:
    result = run("init", "-f", str(tmp_path / "x.yaml"), "--example", "nope")
    assert result.exit_code == 1
    assert "no such example" in result.stderr and "quickstart" in result.stderr
    assert not (tmp_path / "x.yaml").exists()


# --- the installed command ----------------------------------------------------------------------


def installed_envspec() -> Path:
    path = Path(sys.executable).parent / "envspec"
    assert path.is_file(), f"{path} missing: run `make install`"
    return path


def test_installed_envspec_command_renders() -> None:
    clean = {k: v for k, v in os.environ.items() if k not in CLEAN_ENV}
    result = subprocess.run(
        [str(installed_envspec()), "render", "-f", "examples/quickstart/maestro-env.yaml"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env=clean,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout == (REPO / "tests" / "golden" / "quickstart.yaml").read_text(encoding="utf-8")
    assert [d["kind"] for d in load_all(result.stdout)][-1] == "Deployment"
    broken = subprocess.run(
        [str(installed_envspec()), "validate", "-f", "-"],
        input=BROKEN,
        capture_output=True,
        text=True,
        timeout=60,
        env=clean,
        check=False,
    )
    assert broken.returncode == 1
    assert broken.stderr.startswith(
        "<stdin>:6:15: services.api.replicas: must be an integer between 0 and 2147483647\n"
    )
    assert "Traceback" not in broken.stderr


def test_render_path_does_not_import_cluster_libraries() -> None:
    code = (
        "import sys, io, contextlib\n"
        "from envspec.cli.main import main\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out):\n"
        "    try:\n"
        f"        main(['render', '-f', {QUICKSTART!r}, '--tests', '--show-secrets'])\n"
        "    except SystemExit as exc:\n"
        "        assert exc.code in (0, None), exc.code\n"
        "assert out.getvalue().startswith('---'), out.getvalue()[:100]\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('kr8s', 'redis', 'watchfiles'))\n"
        "assert not heavy, heavy\n"
        "print('clean')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "clean\n"


@pytest.mark.parametrize("argv", [["--help"], ["up", "--help"], ["status", "--help"], ["watch", "--help"]])
def test_help_imports_neither_the_model_nor_the_cluster_libraries(argv: list[str]) -> None:
    # Every command pays for what `envspec --help` imports: keep pydantic, kr8s, the event
    # loop and the crash path's modules off it (bench/imports.py times it).
    code = (
        "import sys, io, contextlib\n"
        "from envspec.cli.main import main\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out):\n"
        "    try:\n"
        f"        main({argv!r})\n"
        "    except SystemExit as exc:\n"
        "        assert exc.code in (0, None), exc.code\n"
        "assert 'Usage: envspec' in out.getvalue(), out.getvalue()[:200]\n"
        "roots = ('kr8s', 'httpx', 'pydantic', 'anyio', 'redis', 'watchfiles', 'logging', 'tempfile')\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in roots)\n"
        "assert not heavy, heavy\n"
        "print('clean')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "clean\n"


def process(
    *args: str, code: str = "from envspec.cli.main import entry_point; entry_point()"
) -> subprocess.CompletedProcess[str]:
    """envspec as its own process, through the console script's entry point."""
    program = f"import sys; sys.argv = ['envspec', *{list(args)!r}]; {code}"
    clean = {k: v for k, v in os.environ.items() if k not in CLEAN_ENV}
    return subprocess.run(
        [sys.executable, "-c", program], cwd=REPO, env=clean, capture_output=True, text=True, timeout=120, check=False
    )


def test_the_entry_point_ends_the_process_with_every_byte_written_and_the_same_exit_codes(tmp_path: Path) -> None:
    # entry_point skips the interpreter's teardown: output, exit codes and atexit handlers stay.
    large = str(REPO / "examples" / "large" / "maestro-env.yaml")
    rendered = process("render", "-f", large)
    assert rendered.returncode == 0, rendered.stderr
    assert rendered.stdout == run("render", "-f", large).stdout
    assert len(rendered.stdout) > 100_000  # more than any pipe buffer: the flush is what wrote it

    spec = tmp_path / "bad.yaml"
    spec.write_text("name: x\nservices:\n  api:\n    image: nginx\n    replicas: -1\n")
    invalid = process("validate", "-f", str(spec))
    assert invalid.returncode == 1
    assert "services.api.replicas" in invalid.stderr
    assert process("render", "--no-such-flag").returncode == 2

    handler = "import atexit; atexit.register(lambda: print('atexit ran', file=sys.stderr)); "
    version = process("--version", code=handler + "from envspec.cli.main import entry_point; entry_point()")
    assert (version.returncode, version.stderr) == (0, "atexit ran\n")
    assert version.stdout.startswith("envspec, version ")


def test_a_kubeconfig_that_does_not_exist_is_named_before_any_request(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.yaml"
    result = run("up", "-f", QUICKSTART, "--kubeconfig", str(missing))
    assert result.exit_code == 3
    assert f"no kubeconfig at {missing}" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_validate_help_lists_every_exit_code_it_can_give() -> None:
    text = run("validate", "--help").stdout
    block = text[text.index("Exit codes:") : text.index("Examples:")]
    for code in ("0 ", "1 ", "2 ", "70 ", "130 "):
        assert f"\n    {code}" in block, code
    assert "never exits 3 or 4" in block


def test_the_group_help_names_only_commands_that_exist() -> None:
    text = run("--help").stdout
    summary = re.search(r"manages its life: ([a-z, ]+)\.", text)
    assert summary is not None
    for name in summary.group(1).split(", "):
        assert run(name, "--help").exit_code == 0, name


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://u:s3cret@redis", "http://u:****@redis: must start with redis://, rediss:// or unix://"),
        ("redis://u:s3cret@redis:port/0", "<unparsable Redis URL>: Port could not be cast to integer value"),
    ],
)
def test_worker_refuses_a_redis_url_redis_py_would_refuse_as_a_usage_error_with_the_password_masked(
    url: str, shown: str
) -> None:
    result = run("worker", "--redis", url)
    assert result.exit_code == 2, result.output
    assert f"Invalid value for '--redis': {shown}" in result.output
    assert "s3cret" not in result.output
