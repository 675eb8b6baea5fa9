"""Fast, pure tests of the cluster machinery: go.mod handling, commands, cache, provider choice."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from envspec.cluster import build, gomod, kind, kwok, provider
from envspec.cluster.build import KUBERNETES, Binaries, BuildError, Component, install_entry
from envspec.cluster.paths import Layout, default_cache_root, validate_name
from envspec.cluster.proc import pid_alive
from envspec.cluster.progress import Quiet, format_elapsed
from envspec.errors import EnvspecError

# An excerpt of k8s.io/kubernetes v1.34.x's go.mod, with the traps kept: pseudo-versions
# that start with v0.0.0-, a non-k8s.io module, single-line requires and comments.
KUBE_GOMOD = """\
// This is a generated file. Do not edit directly.

module k8s.io/kubernetes

go 1.24.0

godebug default=go1.24

require (
\tgithub.com/Microsoft/go-winio v0.6.2
\tgithub.com/google/cadvisor v0.52.1
\tk8s.io/api v0.0.0
\tk8s.io/apiextensions-apiserver v0.0.0
\tk8s.io/apimachinery v0.0.0 // a trailing comment
\tk8s.io/client-go v0.0.0
\tk8s.io/klog/v2 v2.130.1
\tk8s.io/kube-openapi v0.0.0-20250710124328-f3f2b991d03b
\tk8s.io/pod-security-admission v0.0.0
\tk8s.io/utils v0.0.0-20250604170112-4c0f3b243397
\tsigs.k8s.io/json v0.0.0-20241014173422-cfa47c3a1cc8
)

require (
\tk8s.io/gengo/v2 v2.0.0-20250604051438-85fd79dbfd9f // indirect
\tk8s.io/externaljwt v0.0.0 // indirect
)

require k8s.io/sample-apiserver v0.0.0

replace (
\tk8s.io/api => ./staging/src/k8s.io/api
\tk8s.io/sample-controller => ./staging/src/k8s.io/sample-controller
)
"""

STAGING = [
    "k8s.io/api",
    "k8s.io/apiextensions-apiserver",
    "k8s.io/apimachinery",
    "k8s.io/client-go",
    "k8s.io/externaljwt",
    "k8s.io/pod-security-admission",
    "k8s.io/sample-apiserver",
]


# --- go.mod parsing and the wrapper modules --------------------------------------------


def test_parse_requirements_reads_blocks_single_lines_and_ignores_replaces() -> None:
    requirements = gomod.parse_requirements(KUBE_GOMOD)
    assert requirements["k8s.io/apimachinery"] == "v0.0.0"
    assert requirements["k8s.io/sample-apiserver"] == "v0.0.0"
    assert requirements["k8s.io/externaljwt"] == "v0.0.0"
    assert requirements["k8s.io/utils"] == "v0.0.0-20250604170112-4c0f3b243397"
    assert "k8s.io/sample-controller" not in requirements  # only in a replace


def test_staging_modules_are_exactly_the_v0_0_0_requirements() -> None:
    staging = gomod.staging_modules(KUBE_GOMOD)
    assert staging == STAGING
    # Pseudo-versions merely start with v0.0.0-: those modules keep their real versions.
    assert "k8s.io/utils" not in staging
    assert "k8s.io/kube-openapi" not in staging
    assert "sigs.k8s.io/json" not in staging


def test_go_directive() -> None:
    assert gomod.go_directive(KUBE_GOMOD) == "1.24.0"
    assert gomod.go_directive("module x\n") is None


def test_staging_version() -> None:
    assert gomod.staging_version("v1.34.4") == "v0.34.4"
    assert gomod.staging_version("v1.33.10") == "v0.33.10"
    with pytest.raises(ValueError):
        gomod.staging_version("v1.34.4-rc.0")


def test_kubernetes_wrapper_gomod_requires_the_release_and_replaces_each_staging_module() -> None:
    text = gomod.kubernetes_wrapper_gomod("v1.34.4", "1.24.0", gomod.staging_modules(KUBE_GOMOD))
    assert "module envspec.local/build/kubernetes\n" in text
    assert "\ngo 1.24.0\n" in text
    assert "require k8s.io/kubernetes v1.34.4\n" in text
    for module in STAGING:
        assert f"\t{module} => {module} v0.34.4\n" in text
    assert "k8s.io/utils" not in text
    # The result is itself a go.mod our parser reads back.
    assert gomod.parse_requirements(text) == {"k8s.io/kubernetes": "v1.34.4"}


def test_etcd_wrapper_and_tools_file() -> None:
    text = gomod.etcd_wrapper_gomod("v3.6.16", "1.26.0")
    assert "require go.etcd.io/etcd/server/v3 v3.6.16\n" in text
    assert "\ngo 1.26.0\n" in text
    tools = gomod.tools_go(["k8s.io/kubernetes/cmd/kube-apiserver", "k8s.io/kubernetes/cmd/kube-scheduler"])
    assert tools.startswith("//go:build tools\n\npackage tools\n")
    assert '\t_ "k8s.io/kubernetes/cmd/kube-apiserver"\n' in tools


def test_version_ldflags_set_server_and_client_versions() -> None:
    flags = gomod.version_ldflags("v1.34.4", "2026-02-10T12:53:36Z")
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        assert f"-X {package}.gitVersion=v1.34.4" in flags
        assert f"-X {package}.gitMajor=1" in flags
        assert f"-X {package}.gitMinor=34" in flags
        assert f"-X {package}.buildDate=2026-02-10T12:53:36Z" in flags
    assert all(" " not in flag.split(" ", 1)[1] for flag in flags)  # one go -ldflags word each


# --- cache layout and keys -------------------------------------------------------------


def test_cache_root_from_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ENVSPEC_CACHE_DIR", str(tmp_path / "c"))
    assert default_cache_root() == tmp_path / "c"
    monkeypatch.delenv("ENVSPEC_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_root() == tmp_path / "xdg" / "envspec"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_root() == Path.home() / ".cache" / "envspec"


def test_cache_keys_carry_the_versions(tmp_path: Path) -> None:
    assert [c.key for c in build.COMPONENTS] == ["kwok-v0.7.0", "etcd-v3.6.16", "kubernetes-v1.34.4"]
    layout = Layout(tmp_path)
    bins = Binaries.in_layout(layout)
    assert bins.kube_apiserver == tmp_path / "bin" / "kubernetes-v1.34.4" / "kube-apiserver"
    assert bins.etcd == tmp_path / "bin" / "etcd-v3.6.16" / "etcd"
    assert bins.kwokctl == tmp_path / "bin" / "kwok-v0.7.0" / "kwokctl"
    assert layout.build_log(KUBERNETES.key) == tmp_path / "logs" / "build-kubernetes-v1.34.4.log"
    assert layout.kubeconfig("dev") == tmp_path / "clusters" / "dev" / "kubeconfig"


TOY = Component("toy", "v1.0.0", ("a", "b"))


def _good_builder(calls: list[Path]) -> build.Builder:
    def builder(work: Path, out: Path) -> None:
        calls.append(out)
        for name in TOY.binaries:
            (out / name).write_text("#!/bin/sh\n")
            (out / name).chmod(0o755)
        (out / build.MARKER).write_text("{}")

    return builder


def test_install_entry_builds_once_then_reuses(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    calls: list[Path] = []
    entry, built = install_entry(layout, TOY, Quiet(), _good_builder(calls))
    assert built and entry == tmp_path / "bin" / "toy-v1.0.0"
    assert build.entry_complete(entry, TOY)
    entry, built = install_entry(layout, TOY, Quiet(), _good_builder(calls))
    assert not built and len(calls) == 1
    assert not list((tmp_path / "bin").glob(".tmp-*"))


@pytest.mark.parametrize("failure", [KeyboardInterrupt, BuildError])
def test_interrupted_or_failed_build_leaves_no_entry(tmp_path: Path, failure: type[BaseException]) -> None:
    layout = Layout(tmp_path)

    def builder(work: Path, out: Path) -> None:
        (out / "a").write_text("half")
        raise failure("stop")

    with pytest.raises(failure):
        install_entry(layout, TOY, Quiet(), builder)
    assert not (tmp_path / "bin" / "toy-v1.0.0").exists()
    assert not list((tmp_path / "bin").glob(".tmp-*"))


def test_build_missing_a_binary_is_an_error_and_stale_scratch_is_removed(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    stale = tmp_path / "bin" / ".tmp-toy-v1.0.0-killed"
    stale.mkdir(parents=True)

    def builder(work: Path, out: Path) -> None:
        (out / "a").write_text("only one")
        (out / "a").chmod(0o755)

    with pytest.raises(BuildError, match="produced no b"):
        install_entry(layout, TOY, Quiet(), builder)
    assert not stale.exists()
    assert not (tmp_path / "bin" / "toy-v1.0.0").exists()


def test_damaged_entry_is_rebuilt(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    calls: list[Path] = []
    entry, _ = install_entry(layout, TOY, Quiet(), _good_builder(calls))
    (entry / "b").unlink()
    _, built = install_entry(layout, TOY, Quiet(), _good_builder(calls))
    assert built and len(calls) == 2


def test_missing_go_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("envspec.cluster.build.shutil.which", lambda name: None)
    monkeypatch.setattr("envspec.cluster.build.os.access", lambda path, mode: False)
    with pytest.raises(EnvspecError, match=r"Go is not installed.*install Go 1\.24 or newer"):
        build.find_go()


def test_parse_go_version() -> None:
    assert build.parse_go_version("go1.26.8") == (1, 26)
    assert build.parse_go_version("devel go1.27-abcdef") == (1, 27)
    assert build.parse_go_version("nonsense") is None


def test_go_env_pins_what_changes_the_build(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOFLAGS", "-mod=vendor")
    env = build.go_env({"GOBIN": "/x"})
    assert env["GOFLAGS"] == "-buildvcs=false"
    assert env["GOWORK"] == "off"
    assert env["CGO_ENABLED"] == "0"
    assert env["GOBIN"] == "/x"


# --- provider selection ----------------------------------------------------------------


def _never() -> bool:
    raise AssertionError("probe should not run")


@pytest.mark.parametrize(
    ("kind_on_path", "docker_ok", "expected"),
    [(True, True, "kind"), (True, False, "kwok"), (False, True, "kwok")],
)
def test_auto_prefers_kind_only_with_docker_and_kind(kind_on_path: bool, docker_ok: bool, expected: str) -> None:
    chosen, _ = provider.choose_provider("auto", None, kind_on_path=lambda: kind_on_path, docker_ok=lambda: docker_ok)
    assert chosen == expected


def test_docker_is_not_probed_without_kind() -> None:
    assert provider.choose_provider("auto", None, kind_on_path=lambda: False, docker_ok=_never)[0] == "kwok"


def test_explicit_provider_and_recorded_provider() -> None:
    assert provider.choose_provider("kind", None, kind_on_path=_never, docker_ok=_never)[0] == "kind"
    assert provider.choose_provider("auto", "kind", kind_on_path=_never, docker_ok=_never)[0] == "kind"
    assert provider.choose_provider("kwok", "kwok", kind_on_path=_never, docker_ok=_never)[0] == "kwok"
    with pytest.raises(EnvspecError, match="already exists with provider kwok"):
        provider.choose_provider("kind", "kwok", kind_on_path=_never, docker_ok=_never)
    with pytest.raises(EnvspecError, match="unknown provider"):
        provider.choose_provider("minikube", None, kind_on_path=_never, docker_ok=_never)


# --- kind command lines ----------------------------------------------------------------


class FakeRunner:
    """Records commands; answers `kind get clusters` with a fixed list."""

    def __init__(self, clusters: Sequence[str]) -> None:
        self.clusters = clusters
        self.commands: list[list[str]] = []

    def __call__(self, cmd: Sequence[str], **_: Any) -> subprocess.CompletedProcess[str]:
        self.commands.append(list(cmd))
        out = ""
        if list(cmd[:3]) == ["kind", "get", "clusters"]:
            out = "".join(f"{c}\n" for c in self.clusters)
        elif cmd[0] == "kubectl":
            out = "https://127.0.0.1:40000"
        return subprocess.CompletedProcess(list(cmd), 0, out, "")


def test_kind_up_creates_with_our_kubeconfig(tmp_path: Path) -> None:
    runner = FakeRunner([])
    info = kind.KindCluster("dev", Layout(tmp_path), Quiet(), runner=runner).up()
    kubeconfig = str(tmp_path / "clusters" / "dev" / "kubeconfig")
    assert runner.commands[:2] == [
        ["kind", "get", "clusters"],
        ["kind", "create", "cluster", "--name", "dev", "--kubeconfig", kubeconfig, "--wait", "120s"],
    ]
    assert info.kubeconfig == kubeconfig and info.server == "https://127.0.0.1:40000"
    assert not any(str(Path.home() / ".kube") in " ".join(c) for c in runner.commands)


def test_kind_up_reuses_an_existing_cluster(tmp_path: Path) -> None:
    runner = FakeRunner(["other", "dev"])
    kind.KindCluster("dev", Layout(tmp_path), Quiet(), runner=runner).up()
    kubeconfig = str(tmp_path / "clusters" / "dev" / "kubeconfig")
    assert runner.commands[1] == ["kind", "export", "kubeconfig", "--name", "dev", "--kubeconfig", kubeconfig]
    assert not any(c[:2] == ["kind", "create"] for c in runner.commands)


def test_kind_down_and_image_loading(tmp_path: Path) -> None:
    runner = FakeRunner(["dev"])
    cluster = kind.KindCluster("dev", Layout(tmp_path), Quiet(), runner=runner)
    cluster.down()
    kubeconfig = str(tmp_path / "clusters" / "dev" / "kubeconfig")
    assert runner.commands[-1] == ["kind", "delete", "cluster", "--name", "dev", "--kubeconfig", kubeconfig]
    cluster.load_image("app:dev")
    assert runner.commands[-1] == ["kind", "load", "docker-image", "app:dev", "--name", "dev"]
    absent = FakeRunner([])
    kind.KindCluster("dev", Layout(tmp_path), Quiet(), runner=absent).down()
    assert absent.commands == [["kind", "get", "clusters"]]


# --- kwokctl command lines and configuration --------------------------------------------


def test_kwokctl_config_binds_loopback_and_uses_local_kubectl() -> None:
    options = kwok.kwokctl_config("/usr/bin/kubectl")["options"]
    assert options["bindAddress"] == "127.0.0.1"
    assert options["runtime"] == "binary"
    assert options["kubectlBinary"] == "/usr/bin/kubectl"
    assert options["kubeVersion"] == "v1.34.4"


def test_kwokctl_documents_carry_the_pod_stages_and_the_log_crds() -> None:
    documents = kwok.kwokctl_documents("/usr/bin/kubectl")
    assert documents[0]["kind"] == "KwokctlConfiguration"
    assert documents[0]["options"]["enableCRDs"] == ["Logs", "ClusterLogs"]
    assert all(d["kind"] == "Stage" for d in documents[1:])
    # Any Stage in the configuration replaces all of kwokctl's defaults: ours include
    # equivalents of its node stages and of its fast pod stages (first), then the
    # annotation-driven ones.
    nodes = [d["metadata"]["name"] for d in documents[1:] if d["spec"]["resourceRef"]["kind"] == "Node"]
    assert nodes == ["node-initialize", "node-heartbeat-with-lease"]
    stages = {d["metadata"]["name"]: d for d in documents[1:] if d["spec"]["resourceRef"]["kind"] == "Pod"}
    assert list(stages) == [
        "pod-ready",
        "pod-complete",
        "pod-complete-delayed",
        "pod-container-failed",
        "pod-container-crash-loop",
        "pod-image-pull-failed",
        "pod-image-pull-back-off",
        "pod-delete",
    ]
    # No fixed delay on the stages an ordinary pod goes through (only one an annotation asks for).
    for name in ("pod-ready", "pod-complete", "pod-delete"):
        delay = stages[name]["spec"].get("delay", {})
        assert "durationMilliseconds" not in delay
        assert all("annotations" in source["jq"]["expression"] for source in delay.values())
    text = kwok.render_documents(documents)
    assert text.count("---\n") == len(documents) - 1
    assert kwok.parse_kwok_config(text) is None  # no components yet: kwokctl adds them on create


def test_config_fingerprint_ignores_the_kubectl_path_and_follows_the_stages() -> None:
    one = kwok.config_fingerprint(kwok.kwokctl_documents("/usr/bin/kubectl"))
    assert one == kwok.config_fingerprint(kwok.kwokctl_documents("/opt/bin/kubectl"))
    changed = kwok.kwokctl_documents("/usr/bin/kubectl")
    changed[-1]["spec"]["next"]["delete"] = False
    assert kwok.config_fingerprint(changed) != one


def test_kwokctl_create_uses_our_binaries_and_kubeconfig(tmp_path: Path) -> None:
    bins = Binaries.in_layout(Layout(tmp_path))
    cmd = kwok.create_command(bins, tmp_path / "kwokctl.yaml", "dev", tmp_path / "kc")
    assert cmd[:5] == [str(bins.kwokctl), "-c", str(tmp_path / "kwokctl.yaml"), "--name", "dev"]

    def flag(name: str) -> str:
        return cmd[cmd.index(name) + 1]

    assert flag("--runtime") == "binary"
    assert flag("--kubeconfig") == str(tmp_path / "kc")
    assert flag("--kube-apiserver-binary") == str(bins.kube_apiserver)
    assert flag("--kube-controller-manager-binary") == str(bins.kube_controller_manager)
    assert flag("--kube-scheduler-binary") == str(bins.kube_scheduler)
    assert flag("--etcd-binary") == str(bins.etcd)
    assert flag("--kwok-controller-binary") == str(bins.kwok)
    assert "--kube-admission=true" in cmd
    delete = kwok.delete_command(bins, tmp_path / "kwokctl.yaml", "dev", tmp_path / "kc")
    assert delete[delete.index("--kubeconfig") + 1] == str(tmp_path / "kc")
    assert kwok.scale_nodes_command(bins, tmp_path / "k.yaml", "dev")[-4:] == ["scale", "node", "--replicas", "2"]


def test_kwok_env_isolates_from_user_settings(tmp_path: Path) -> None:
    env = kwok.kwok_env(Layout(tmp_path), {"PATH": "/bin", "KWOK_KUBE_VERSION": "v1.20.0", "KWOK_WORKDIR": "/x"})
    assert env == {
        "PATH": "/bin",
        "KWOK_WORKDIR": str(tmp_path / "kwok"),
        "KUBECACHEDIR": str(tmp_path / "kube-cache"),
    }


KWOK_YAML = """\
apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokctlConfiguration
components:
- name: etcd
  ports:
  - {name: peer-http, port: 32766, protocol: TCP}
  - {name: http, port: 32765, protocol: TCP}
- name: kube-apiserver
  ports:
  - {name: https, port: 32764, protocol: TCP}
- name: kube-scheduler
options:
  bindAddress: 127.0.0.1
  kubeApiserverPort: 32764
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: pod-ready
"""


def test_parse_kwok_config() -> None:
    config = kwok.parse_kwok_config(KWOK_YAML)
    assert config is not None
    assert config.apiserver_port == 32764
    assert config.ports == {"etcd": [32766, 32765], "kube-apiserver": [32764], "kube-scheduler": []}
    assert kwok.parse_kwok_config("") is None
    assert kwok.parse_kwok_config("kind: KwokctlConfiguration\n") is None  # no components: half-written
    assert kwok.parse_kwok_config("{{{") is None


def test_foreign_pid_in_a_pid_file_is_never_treated_as_ours(tmp_path: Path) -> None:
    # A pid file naming a live process that is not this cluster's component (pid reuse
    # after a reboot): it must be dropped, not trusted and never killed.
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        cluster = kwok.KwokCluster("dev", Layout(tmp_path), Quiet())
        pids = cluster.cluster_dir / "pids"
        pids.mkdir(parents=True)
        (pids / "kube-apiserver.pid").write_text(str(stranger.pid))
        (pids / "etcd.pid").write_text("not a number")
        assert cluster.our_pid("kube-apiserver") is None
        assert sorted(cluster.remove_stale_pid_files()) == ["etcd", "kube-apiserver"]
        cluster.destroy()
        assert not cluster.cluster_dir.exists()
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()


def test_pid_alive() -> None:
    assert pid_alive(os.getpid())
    child = subprocess.Popen(["true"])
    child.wait()
    assert not pid_alive(child.pid)


# --- small helpers and the CLI ---------------------------------------------------------


@pytest.mark.parametrize("name", ["envspec", "envspec-test", "a", "x1-2"])
def test_valid_names(name: str) -> None:
    assert validate_name(name) == name


@pytest.mark.parametrize("name", ["", "Envspec", "-a", "a-", "a_b", "a/b", "x" * 41])
def test_invalid_names(name: str) -> None:
    with pytest.raises(EnvspecError, match="invalid cluster name"):
        validate_name(name)


def test_format_elapsed() -> None:
    assert format_elapsed(4.21) == "4.2s"
    assert format_elapsed(187) == "3m07s"


def test_cli_group_and_kubeconfig_of_missing_cluster(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from envspec.cli.cluster import command

    monkeypatch.setenv("ENVSPEC_CACHE_DIR", str(tmp_path))
    runner = CliRunner()
    result = runner.invoke(command, ["--help"])
    assert result.exit_code == 0
    for sub in ("up", "down", "status", "kubeconfig"):
        assert sub in result.output
    result = runner.invoke(command, ["kubeconfig", "--name", "nope"])
    assert isinstance(result.exception, EnvspecError)
    assert "envspec cluster up --name nope" in result.exception.message
    (tmp_path / "clusters" / "nope").mkdir(parents=True)
    (tmp_path / "clusters" / "nope" / "kubeconfig").write_text("")
    result = runner.invoke(command, ["kubeconfig", "--name", "nope"])
    assert result.output.strip() == str(tmp_path / "clusters" / "nope" / "kubeconfig")


def test_down_of_absent_cluster_is_a_no_op(tmp_path: Path) -> None:
    assert provider.cluster_down("ghost", progress=Quiet(), layout=Layout(tmp_path)) is False


def test_kind_without_kind_binary_is_a_clear_error_and_records_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr("envspec.cluster.provider.shutil.which", lambda name: None)
    with pytest.raises(EnvspecError, match="kind is not on PATH"):
        provider.cluster_up("dev", "kind", progress=Quiet(), layout=Layout(tmp_path))
    assert provider.read_record(Layout(tmp_path), "dev") is None
