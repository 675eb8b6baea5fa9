"""Values keep what the user wrote, within what Kubernetes can hold (issue 12, items 9-12).

- a number or boolean where a string is expected is the text as written (`8.10`, `0x1F`);
- integers, durations and quantities are checked against the API's types, with the range named;
- label keys of Kubernetes, kube-janitor and envspec are refused;
- images are checked after their references are substituted, against the reference grammar.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from envspec.compiler import compile_plan
from envspec.errors import SpecError
from envspec.loader import load_text
from envspec.plan import Plan
from envspec.validation import validate

SOURCE = "maestro-env.yaml"
HEAD = "apiVersion: envspec/v1\nname: demo\n"
INT32_MAX = 2**31 - 1
MAX_QUANTITY = 2**63 - 1
DIGEST = "sha256:" + "a" * 64
ENVSPEC = Path(sys.executable).parent / "envspec"


def plan_of(text: str, environ: Mapping[str, str] | None = None) -> Plan:
    return compile_plan(validate(load_text(text, SOURCE), dict(environ or {})), include_tests=True)


def problems(text: str, environ: Mapping[str, str] | None = None) -> list[str]:
    with pytest.raises(SpecError) as caught:
        validate(load_text(text, SOURCE), dict(environ or {}))
    return [str(p) for p in caught.value.problems]


def manifest(plan: Plan, kind: str, name: str) -> dict[str, Any]:
    return next(o.manifest for o in plan.objects if o.kind == kind and o.manifest["metadata"]["name"] == name)


def container(plan: Plan, kind: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = manifest(plan, kind, name)["spec"]["template"]["spec"]["containers"][0]
    return found


def env_values(plan: Plan, kind: str, name: str) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container(plan, kind, name).get("env", []) if "value" in e}


# --- 9: the text as written --------------------------------------------------------------------

# Plain scalars YAML 1.1 or 1.2 reads as numbers or booleans, each as a user wrote it.
SPELLINGS = [
    "8.10",
    "3.10",
    "0x1F",
    "0o17",
    "017",
    "0b101",
    "1e3",
    "1E+3",
    "1.5e-3",
    "1_000",
    "+12",
    "-0",
    "1.0",
    "007",
    ".inf",
    "-.inf",
    ".NaN",
    "1e400",
    "true",
    "False",
    "1" * 5000,
    "0x" + "f" * 5000,
]


@pytest.mark.parametrize("written", SPELLINGS, ids=[s[:12] for s in SPELLINGS])
def test_env_values_and_commands_are_the_text_as_written(written: str) -> None:
    plan = plan_of(HEAD + f"services:\n  api:\n    image: app\n    env: {{V: {written}}}\n    args: [{written}]\n")
    assert env_values(plan, "Deployment", "api")["V"] == written
    assert container(plan, "Deployment", "api")["args"] == [written]


@pytest.mark.parametrize("written", ["8.10", "3.10", "0x1F", "1e3", "1_000", "017", "true", "1.0"])
def test_labels_versions_and_images_are_the_text_as_written(written: str) -> None:
    image = written.lower()  # an image's path is lower case
    plan = plan_of(
        HEAD
        + f"labels: {{release: {written}}}\n"
        + f"databases:\n  db: {{engine: postgresql, version: {written}}}\n"
        + f"services:\n  api: {{image: {image}}}\n"
    )
    for found in plan.objects:
        assert found.manifest["metadata"]["labels"]["release"] == written
    assert container(plan, "StatefulSet", "db")["image"] == f"postgres:{written}"
    assert container(plan, "Deployment", "api")["image"] == image


def test_quantities_are_written_as_given() -> None:
    plan = plan_of(HEAD + "services:\n  api:\n    image: app\n    resources: {limits: {cpu: 1.50, memory: 1e9}}\n")
    assert container(plan, "Deployment", "api")["resources"]["limits"] == {"cpu": "1.50", "memory": "1e9"}


def test_numbers_where_numbers_are_expected_are_numbers() -> None:
    plan = plan_of(HEAD + "services:\n  api: {image: app, port: 0x1F90, replicas: 2.0, health: {path: /h}}\n")
    deployment = manifest(plan, "Deployment", "api")
    assert deployment["spec"]["replicas"] == 2
    assert container(plan, "Deployment", "api")["ports"][0]["containerPort"] == 8080


def test_a_number_is_still_not_a_duration() -> None:
    assert problems(HEAD + "ttl: 60\n") == [f"{SOURCE}:3:6: ttl: must be a duration such as 30s, 45m, 2h, 1h30m or 7d"]


# --- 10: Kubernetes' limits ----------------------------------------------------------------------

INT32_FIELDS = [
    (
        "replicas",
        "resources: {{quota: {{pods: 2147483647}}}}\nservices:\n  api:\n    image: app\n    replicas: {value}\n",
        0,
        "services.api.replicas",
        7,
        15,
    ),
    ("retries", "tests:\n  t:\n    image: app\n    retries: {value}\n", 0, "tests.t.retries", 6, 14),
    (
        "initialDelaySeconds",
        "services:\n  api:\n    image: app\n    port: 80\n    health: {{path: /h, initialDelaySeconds: {value}}}\n",
        0,
        "services.api.health.initialDelaySeconds",
        7,
        45,
    ),
    (
        "periodSeconds",
        "services:\n  api:\n    image: app\n    port: 80\n    health: {{path: /h, periodSeconds: {value}}}\n",
        1,
        "services.api.health.periodSeconds",
        7,
        39,
    ),
]


@pytest.mark.parametrize(("field", "template", "minimum", "path", "line", "column"), INT32_FIELDS)
def test_int32_fields_accept_their_range_and_name_it(
    field: str, template: str, minimum: int, path: str, line: int, column: int
) -> None:
    plan_of(HEAD + template.format(value=INT32_MAX))
    plan_of(HEAD + template.format(value=minimum))
    message = f"{SOURCE}:{line}:{column}: {path}: must be an integer between {minimum} and {INT32_MAX}"
    for value in (INT32_MAX + 1, minimum - 1, "9" * 5000, f"0x{'f' * 5000}", "1e300", ".inf", ".nan"):
        assert problems(HEAD + template.format(value=value)) == [message], value


def test_the_largest_replica_count_is_written_as_is() -> None:
    text = (
        HEAD + f"resources: {{quota: {{pods: {INT32_MAX}}}}}\nservices:\n  api: {{image: app, replicas: {INT32_MAX}}}\n"
    )
    assert manifest(plan_of(text), "Deployment", "api")["spec"]["replicas"] == INT32_MAX


@pytest.mark.parametrize("ttl", ["36500d", "5214w", "876000h", "52560000m", "3153600000s", "5214w2d"])
def test_durations_up_to_100_years_are_accepted(ttl: str) -> None:
    assert validate(load_text(HEAD + f"ttl: {ttl}\n", SOURCE), {}).ttl_seconds is not None


@pytest.mark.parametrize(
    "ttl", ["36501d", "5215w", "876001h", "3153600001s", "99999999w", "9" * 5000 + "m", "0" * 4000 + "36501d"]
)
def test_longer_durations_are_refused_with_the_limit(ttl: str) -> None:
    found = problems(HEAD + f"ttl: {ttl}\n")
    assert len(found) == 1
    assert found[0].startswith(f"{SOURCE}:3:6: ttl: duration '")
    assert found[0].endswith("' is out of range: at most 36500d (100 years)")
    assert len(found[0]) < 200  # a 5000-digit value is shortened


def test_a_test_timeout_is_an_int64_deadline_within_the_duration_limit() -> None:
    plan = plan_of(HEAD + "tests:\n  t: {image: app, timeout: 36500d}\n")
    assert manifest(plan, "Job", "t")["spec"]["activeDeadlineSeconds"] == 36500 * 86400
    assert problems(HEAD + "tests:\n  t: {image: app, timeout: 36501d}\n") == [
        f"{SOURCE}:4:28: tests.t.timeout: duration '36501d' is out of range: at most 36500d (100 years)"
    ]


def test_k8s_ttl_minutes_beyond_the_limit_is_a_located_error() -> None:
    assert validate(load_text(HEAD, SOURCE), {"K8S_TTL_MINUTES": "52560000"}).ttl == "36500d"
    for value in ("52560001", "9" * 5000):
        (message,) = problems(HEAD, {"K8S_TTL_MINUTES": value})
        assert message.startswith(f"{SOURCE}:1:1: ttl: environment variable K8S_TTL_MINUTES=")
        assert message.endswith("is out of range: at most 52560000 minutes (36500d, 100 years)")
    (superscript,) = problems(HEAD, {"K8S_TTL_MINUTES": "²"})
    assert superscript.endswith("must be a whole number of minutes > 0")


@pytest.mark.parametrize("memory", [str(MAX_QUANTITY), "7Ei", "9223372036854775807000m", "9.2e18"])
def test_quantities_up_to_2_63_are_accepted(memory: str) -> None:
    text = HEAD + f"resources: {{quota: {{memory: {MAX_QUANTITY}}}}}\n"
    plan_of(text + f"services:\n  api:\n    image: app\n    resources: {{limits: {{memory: {memory}}}}}\n")


@pytest.mark.parametrize("memory", [str(MAX_QUANTITY + 1), "8Ei", "9.3e18", "1" * 5000])
def test_larger_quantities_are_refused_with_the_limit(memory: str) -> None:
    text = HEAD + f"services:\n  api:\n    image: app\n    resources: {{limits: {{memory: {memory}}}}}\n"
    (message,) = problems(text)
    assert message.startswith(f"{SOURCE}:6:34: services.api.resources.limits.memory: quantity '")
    assert message.endswith("is out of range: at most 9223372036854775807 (2^63-1, about 8Ei)")


def test_a_default_limit_from_the_environment_beyond_2_63_is_refused() -> None:
    assert problems(HEAD, {"DEFAULT_MEMORY_LIMIT": "8Ei"}) == [
        f"{SOURCE}:1:1: resources: environment variable DEFAULT_MEMORY_LIMIT: quantity '8Ei' is out of range: "
        "at most 9223372036854775807 (2^63-1, about 8Ei)"
    ]


def test_an_auto_quota_beyond_2_63_is_refused_at_the_quota() -> None:
    text = HEAD + "resources: {quota: {pods: 100}}\nservices:\n  api:\n    image: app\n    replicas: 3\n"
    found = problems(text + "    resources: {limits: {memory: 4Ei}}\n")
    assert found == [
        f"{SOURCE}:3:20: resources.quota.memory: the environment needs 12Ei of memory (the sum of container "
        "limits x replicas, plus the largest test), more than a quota can hold: at most 9223372036854775807 (2^63-1)"
    ]


# --- 11: reserved label prefixes ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "owner"),
    [
        ("kubernetes.io/arch", "Kubernetes"),
        ("node.kubernetes.io/instance-type", "Kubernetes"),
        ("k8s.io/x", "Kubernetes"),
        ("x.k8s.io/y", "Kubernetes"),
        ("janitor/ttl", "kube-janitor"),
        ("envspec.dev/mine", "envspec"),
        ("sub.envspec.dev/mine", "envspec"),
        ("app.kubernetes.io/name", "envspec"),
        ("pod-security.kubernetes.io/enforce", "envspec"),
    ],
)
def test_reserved_label_prefixes_are_refused(key: str, owner: str) -> None:
    (message,) = problems(HEAD + f"labels:\n  {key}: x\n")
    assert message.startswith(f"{SOURCE}:4:3: labels.{key}: label key '{key}' is reserved for {owner}")


@pytest.mark.parametrize("key", ["team", "example.com/team", "mykubernetes.io/x", "k8s.iox/y", "janitors/x", "ttl"])
def test_other_label_keys_are_accepted(key: str) -> None:
    plan = plan_of(HEAD + f"labels:\n  {key}: x\n")
    assert manifest(plan, "Namespace", "envspec-demo")["metadata"]["labels"][key] == "x"


# --- 12: images after substitution, against the reference grammar -----------------------------


@pytest.mark.parametrize(
    "image",
    [
        "nginx",
        "nginx:1.27",
        "library/nginx:1.27-alpine",
        "registry.example.com:5000/team/app:1.2",
        "localhost/app",
        "Registry.Example.com/app:V1",
        "[::1]:5000/app:1",
        f"app@{DIGEST}",
        f"ghcr.io/org/app:1.0@{DIGEST}",
        "a__b/c-d--e.f:_x",
        "app:" + "t" * 128,
    ],
)
def test_valid_image_references_are_accepted(image: str) -> None:
    plan = plan_of(HEAD + f"services:\n  api:\n    image: '{image}'\n")
    assert container(plan, "Deployment", "api")["image"] == image


@pytest.mark.parametrize(
    "image",
    [
        "MyApp:1",
        "app:",
        ":1",
        "app:-1",
        "app:.1",
        "app@sha256:abc",
        "app//x",
        "-app",
        "app:1:2",
        "app:" + "t" * 129,
        "a" * 256,
        "app\u00e9:1",
    ],
)
def test_invalid_image_references_are_refused_at_the_image(image: str) -> None:
    (message,) = problems(HEAD + f"services:\n  api:\n    image: '{image}'\n")
    assert message.startswith(f"{SOURCE}:5:12: services.api.image: invalid image ")


@pytest.mark.parametrize("tag", ["1 --privileged", "1\n--privileged", "1\t", "", "-x", "UPPER/../x"])
def test_an_image_is_checked_after_its_references_are_substituted(tag: str) -> None:
    text = HEAD + "services:\n  api:\n    image: 'myapp:${env.TAG}'\n"
    (message,) = problems(text, {"TAG": tag})
    assert message.startswith(f"{SOURCE}:5:12: services.api.image: invalid image 'myapp:")
    assert message.endswith("(the image after substituting its references in 'myapp:${env.TAG}')")
    assert "\n" not in message


def test_references_that_keep_an_image_valid_are_substituted_as_compiled() -> None:
    text = (
        HEAD
        + "databases:\n  db: {engine: postgresql, image: 'mirror.example.com/postgres:${env.PG:-16}'}\n"
        + "services:\n  api: {image: 'registry/${environment.name}/api:${env.TAG}-${db.port}'}\n"
    )
    plan = plan_of(text, {"TAG": "1.2"})
    assert container(plan, "StatefulSet", "db")["image"] == "mirror.example.com/postgres:16"
    assert container(plan, "Deployment", "api")["image"] == "registry/demo/api:1.2-5432"


def test_a_service_url_is_no_image() -> None:
    text = HEAD + "services:\n  web: {image: nginx, port: 80}\n  api: {image: '${web.url}'}\n"
    (message,) = problems(text)
    assert message.startswith(f"{SOURCE}:5:16: services.api.image: invalid image 'http://web:80'")


# --- the installed command: exit codes -----------------------------------------------------------


def envspec(tmp_path: Path, text: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    spec = tmp_path / "maestro-env.yaml"
    spec.write_text(text, encoding="utf-8")
    return subprocess.run(
        [str(ENVSPEC), "render", "-o", "json", "-f", str(spec)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "ENVSPEC_LOG_DIR": str(tmp_path), **(env or {})},
    )


def test_the_installed_command_keeps_values_and_exits_1_on_limits(tmp_path: Path) -> None:
    done = envspec(tmp_path, HEAD + "databases:\n  db: {engine: postgresql, version: 8.10}\n")
    assert done.returncode == 0, done.stderr
    images = [o["spec"]["template"]["spec"]["containers"][0]["image"] for o in json.loads(done.stdout)["items"][-1:]]
    assert images == ["postgres:8.10"]
    for text, env in (
        (HEAD + "ttl: 99999999w\n", {}),
        (HEAD + f"services:\n  api: {{image: app, replicas: 0x{'f' * 5000}}}\n", {}),
        (HEAD + f"services:\n  api: {{image: app, resources: {{limits: {{memory: {'9' * 5000}}}}}}}\n", {}),
        ("apiVersion: 0x" + "f" * 5000 + "\nname: a\n", {}),
        (HEAD + "labels: {node.kubernetes.io/x: a}\n", {}),
        (HEAD + "services:\n  api: {image: 'myapp:${env.TAG}'}\n", {"TAG": "1 --privileged\n"}),
    ):
        done = envspec(tmp_path, text, env)
        assert done.returncode == 1, (text[:80], done.stderr)
        assert "Traceback" not in done.stderr and done.stdout == ""
        *located, summary = done.stderr.splitlines()
        assert located and all(line.startswith(f"{tmp_path}/maestro-env.yaml:") for line in located), done.stderr
        assert summary.endswith("found")
