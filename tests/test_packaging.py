"""The wheel ships templates, schema and examples, and a non-editable install works on its own."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from envspec import resources

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [PYTHON, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(REPO)],
        check=True,
        capture_output=True,
        timeout=180,
    )
    (built,) = out.glob("envspec-*.whl")
    return built


def repo_files(directory: str) -> set[str]:
    root = REPO / directory
    return {
        f"envspec/_data/{directory}/{path.relative_to(root).as_posix()}"
        for path in root.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }


def test_wheel_contains_the_data_files(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        for directory in ("templates", "schemas", "examples"):
            expected = repo_files(directory)
            assert expected, directory
            assert expected <= names, sorted(expected - names)
        assert "envspec/_data/schemas/maestro-env.schema.json" in names
        assert "envspec/_data/templates/base/deployment.yaml" in names
        assert "envspec/_data/templates/engines/postgresql.yaml" in names
        assert "envspec/_data/examples/quickstart/maestro-env.yaml" in names
        assert (
            archive.read("envspec/_data/schemas/maestro-env.schema.json")
            == (REPO / "schemas" / "maestro-env.schema.json").read_bytes()
        )
        assert "envspec/cli/main.py" in names
        assert not any(name.startswith("tests/") for name in names)
        (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        assert "envspec = envspec.cli.main:entry_point" in archive.read(entry_points).decode()


def test_data_dir_prefers_the_packaged_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "site" / "envspec"
    (package / "_data" / "templates").mkdir(parents=True)
    (tmp_path / "site" / "templates").mkdir()
    monkeypatch.setattr(resources, "_PACKAGE", package)
    find = resources.data_dir.__wrapped__
    assert find("templates") == package / "_data" / "templates"
    # a source checkout (no _data) falls back to the top-level directory
    (tmp_path / "site" / "schemas").mkdir()
    assert find("schemas") == tmp_path / "site" / "schemas"
    with pytest.raises(FileNotFoundError, match="examples"):
        find("examples")


def test_non_editable_install_works_outside_the_checkout(wheel: Path, tmp_path: Path) -> None:
    """Install the wheel into a fresh venv (its dependencies come from this venv through a
    .pth file, so nothing is downloaded) and run the installed command from elsewhere."""
    venv = tmp_path / "venv"
    subprocess.run([PYTHON, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout.strip()
    # Plain path lines: the editable install's own .pth files in there are not processed.
    (Path(purelib) / "envspec-test-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    subprocess.run(
        [PYTHON, "-m", "pip", "--python", str(python), "install", "--no-deps", "--quiet", str(wheel)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    spec = workdir / "maestro-env.yaml"
    spec.write_text(
        (REPO / "examples" / "quickstart" / "maestro-env.yaml").read_text(encoding="utf-8"), encoding="utf-8"
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    render = subprocess.run(
        [str(venv / "bin" / "envspec"), "render", "-f", "maestro-env.yaml"],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert render.returncode == 0, render.stderr
    assert render.stdout == (REPO / "tests" / "golden" / "quickstart.yaml").read_text(encoding="utf-8")
    where = subprocess.run(
        [
            str(python),
            "-c",
            "import envspec, envspec.resources as r; print(envspec.__file__); print(r.schema_path())",
        ],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=True,
    ).stdout.splitlines()
    assert where[0].startswith(purelib), where
    assert where[1] == f"{purelib}/envspec/_data/schemas/maestro-env.schema.json"
    init = subprocess.run(
        [str(venv / "bin" / "envspec"), "init", "-f", "new.yaml", "--example", "fullstack"],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert init.returncode == 0, init.stderr
    assert (
        (workdir / "new.yaml")
        .read_text(encoding="utf-8")
        .startswith(f"# yaml-language-server: $schema={purelib}/envspec/_data/schemas/maestro-env.schema.json\n")
    )
