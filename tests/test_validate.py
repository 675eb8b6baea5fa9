"""Validation: every problem of a broken spec, located as FILE:LINE:COL: path: message."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from envspec.defaults import ValidSpec
from envspec.errors import SpecError
from envspec.loader import load_text
from envspec.validation import validate

SOURCE = "maestro-env.yaml"
HEAD = "apiVersion: envspec/v1\nname: demo\n"
REPO = Path(__file__).resolve().parent.parent


def check(text: str, environ: Mapping[str, str] | None = None) -> ValidSpec:
    return validate(load_text(text, SOURCE), dict(environ or {}))


def errors(text: str, environ: Mapping[str, str] | None = None) -> list[str]:
    with pytest.raises(SpecError) as info:
        check(text, environ)
    return [str(problem) for problem in info.value.problems]


def at(line: int, column: int, rest: str) -> str:
    return f"{SOURCE}:{line}:{column}: {rest}"


PASSWORD_IN_COMMAND = (
    "is a password, which lives only in the database's Secret; "
    "use it in `env` values, where it is read from that Secret"
)
URL_IN_COMMAND = PASSWORD_IN_COMMAND.replace("a password", "a database URL")
LABEL_VALUE_RULE = "at most 63 characters of a-z, A-Z, 0-9, '-', '_', '.', starting and ending with a letter or digit"

BROKEN: dict[str, tuple[str, list[str]]] = {
    "unknown key with a suggestion": (
        HEAD + "databases:\n  db: {engine: postgresql}\nservices:\n  api:\n    image: app\n    depends_on: [db]\n",
        [at(8, 5, "services.api.depends_on: unknown key 'depends_on'; did you mean 'dependsOn'?")],
    ),
    "unknown top-level key": (
        HEAD + "servics: {}\n",
        [at(3, 1, "servics: unknown key 'servics'; did you mean 'services'?")],
    ),
    "unknown key without a close match": (
        HEAD + "services:\n  api:\n    image: app\n    zzz: 1\n",
        [at(6, 5, "services.api.zzz: unknown key 'zzz'")],
    ),
    "missing image, located at the parent mapping": (
        HEAD + "services:\n  api:\n    port: 80\n",
        [at(4, 3, "services.api: missing required key 'image'")],
    ),
    "missing engine": (
        HEAD + "databases:\n  db:\n    version: '15'\n",
        [at(4, 3, "databases.db: missing required key 'engine'")],
    ),
    "missing apiVersion and name": (
        "kind: Environment\n",
        [
            at(1, 1, "apiVersion: missing required key 'apiVersion'"),
            at(1, 1, "name: missing required key 'name'"),
        ],
    ),
    "bad engine lists the allowed values": (
        HEAD + "databases:\n  db:\n    engine: postgres\n",
        [
            at(
                5,
                13,
                "databases.db.engine: must be one of: postgresql, mysql, mongodb, redis (got 'postgres'); "
                "did you mean 'postgresql'?",
            )
        ],
    ),
    "bad isolation": (
        HEAD + "isolation: strict\n",
        [at(3, 12, "isolation: must be one of: namespace, none (got 'strict')")],
    ),
    "bad podSecurity": (
        HEAD + "podSecurity: strict\n",
        [
            at(
                3,
                14,
                "podSecurity: must be one of: privileged, baseline, restricted (got 'strict'); "
                "did you mean 'restricted'?",
            )
        ],
    ),
    "bad kind": (
        "apiVersion: envspec/v1\nkind: Env\nname: demo\n",
        [at(2, 7, "kind: must be one of: Environment (got 'Env')")],
    ),
    "unsupported apiVersion": (
        "apiVersion: envspec/v2\nname: demo\n",
        [at(1, 13, "apiVersion: unsupported apiVersion 'envspec/v2'; the supported version is envspec/v1")],
    ),
    "bad name": (
        "apiVersion: envspec/v1\nname: Demo_1\n",
        [
            at(
                2,
                7,
                "name: 'Demo_1' is not a valid name: use lower-case letters, digits and '-', "
                "starting and ending with a letter or digit",
            )
        ],
    ),
    "long name": (
        "apiVersion: envspec/v1\nname: " + "a" * 41 + "\n",
        [at(2, 7, "name: '" + "a" * 41 + "' is 41 characters long; at most 40 are allowed")],
    ),
    "negative replicas": (
        HEAD + "services:\n  api:\n    image: app\n    replicas: -1\n",
        [at(6, 15, "services.api.replicas: must be an integer between 0 and 2147483647")],
    ),
    "replicas not a number": (
        HEAD + "services:\n  api:\n    image: app\n    replicas: many\n",
        [at(6, 15, "services.api.replicas: must be an integer between 0 and 2147483647")],
    ),
    "ports out of range": (
        HEAD
        + "services:\n  api:\n    image: app\n    port: 0\n  web:\n    image: app\n    port: 65536\n"
        + "  ok:\n    image: app\n    port: 65535\n",
        [
            at(6, 11, "services.api.port: must be an integer between 1 and 65535"),
            at(9, 11, "services.web.port: must be an integer between 1 and 65535"),
        ],
    ),
    "health port out of range": (
        HEAD + "services:\n  api:\n    image: app\n    port: 80\n    health: {path: /h, port: 70000}\n",
        [at(7, 30, "services.api.health.port: must be an integer between 1 and 65535")],
    ),
    "health without any port": (
        HEAD + "services:\n  api:\n    image: app\n    health: /ready\n",
        [at(6, 13, "services.api.health: needs a port: set the service's `port` or `health.port`")],
    ),
    "health path": (
        HEAD + "services:\n  api:\n    image: app\n    port: 80\n    health: ready\n",
        [at(7, 13, "services.api.health.path: must be an HTTP path starting with '/'")],
    ),
    "invalid quantities": (
        HEAD
        + "resources:\n  defaults:\n    limits: {cpu: 1 core, memory: 1GB}\n"
        + "databases:\n  db:\n    engine: redis\n    storage: lots\n",
        [
            at(
                5,
                19,
                "resources.defaults.limits.cpu: invalid quantity '1 core': expected e.g. 500m, 2, 256Mi or 1Gi",
            ),
            at(
                5,
                35,
                "resources.defaults.limits.memory: invalid quantity '1GB': expected e.g. 500m, 2, 256Mi or 1Gi",
            ),
            at(9, 14, "databases.db.storage: invalid quantity 'lots': expected e.g. 500m, 2, 256Mi or 1Gi"),
        ],
    ),
    "invalid quota values": (
        HEAD + "resources:\n  quota: {cpu: many, pods: -1}\n",
        [
            at(4, 16, "resources.quota.cpu: invalid quantity 'many': expected e.g. 500m, 2, 256Mi or 1Gi"),
            at(4, 28, "resources.quota.pods: must be an integer between 0 and 2147483647"),
        ],
    ),
    "invalid durations": (
        HEAD + "ttl: 1 hour\ntests:\n  t:\n    image: x\n    timeout: 10\n  u:\n    image: x\n    timeout: 5min\n",
        [
            at(3, 6, "ttl: invalid duration '1 hour': expected e.g. 30s, 45m, 2h, 1h30m or 7d"),
            at(7, 14, "tests.t.timeout: must be a duration such as 30s, 45m, 2h, 1h30m or 7d"),
            at(10, 14, "tests.u.timeout: invalid duration '5min': expected e.g. 30s, 45m, 2h, 1h30m or 7d"),
        ],
    ),
    "zero duration": (
        HEAD + "ttl: 0m\n",
        [
            at(
                3,
                6,
                "ttl: invalid duration '0m': must be longer than 0s: expected e.g. 30s, 45m, 2h, 1h30m or 7d",
            )
        ],
    ),
    "label keys and values": (
        HEAD
        + "labels:\n  team: payments\n  'bad key': x\n  example.com/ok: v\n  Bad_Domain.com/x: y\n"
        + "  envspec.dev/mine: z\n  long: "
        + "v" * 64
        + "\n  space: 'a b'\n",
        [
            at(
                5,
                3,
                "labels.bad key: invalid label key 'bad key': the name must be 1-63 characters of a-z, A-Z, 0-9, "
                "'-', '_', '.', starting and ending with a letter or digit",
            ),
            at(
                7,
                3,
                "labels.Bad_Domain.com/x: invalid label key 'Bad_Domain.com/x': the prefix must be a DNS subdomain",
            ),
            at(8, 3, "labels.envspec.dev/mine: label key 'envspec.dev/mine' is reserved for envspec"),
            at(9, 9, f"labels.long: invalid label value '{'v' * 64}': {LABEL_VALUE_RULE}"),
            at(10, 10, f"labels.space: invalid label value 'a b': {LABEL_VALUE_RULE}"),
        ],
    ),
    "unknown dependsOn target": (
        HEAD + "databases:\n  db: {engine: postgresql}\nservices:\n  api:\n    image: app\n    dependsOn: [db, dbb]\n",
        [
            at(
                8,
                21,
                "services.api.dependsOn[1]: unknown name 'dbb': no database or service is called that; "
                "did you mean 'db'?",
            )
        ],
    ),
    "dependsOn a test": (
        HEAD + "services:\n  api:\n    image: app\n    dependsOn: [suite]\ntests:\n  suite: {image: t}\n",
        [at(6, 17, "services.api.dependsOn[0]: 'suite' is a test; services cannot depend on tests")],
    ),
    "dependency cycle": (
        HEAD
        + "services:\n  alpha:\n    image: a\n    dependsOn: [beta]\n  beta:\n    image: b\n    dependsOn: [gamma]\n"
        + "  gamma:\n    image: c\n    dependsOn: [alpha]\n",
        [at(6, 17, "services.alpha.dependsOn[0]: dependency cycle: alpha -> beta -> gamma -> alpha")],
    ),
    "self dependency": (
        HEAD + "services:\n  alpha:\n    image: a\n    dependsOn: [alpha]\n",
        [at(6, 17, "services.alpha.dependsOn[0]: dependency cycle: alpha -> alpha")],
    ),
    "unknown reference names and attributes": (
        HEAD
        + "databases:\n  db: {engine: postgresql}\nservices:\n  api:\n    image: app\n    port: 80\n    env:\n"
        + "      A: ${dbx.url}\n      B: ${db.pasword}\n      C: ${api.user}\n      D: ${environment.id}\n"
        + "      E: ${env.NOPE}\n      F: ${env.NOPE:-fallback}\n      G: ${env.SET}\n      H: ${suite.url}\n"
        + "tests:\n  suite: {image: t}\n",
        [
            at(10, 10, "services.api.env.A: ${dbx.url}: unknown name 'dbx'; did you mean 'db'?"),
            at(
                11,
                10,
                "services.api.env.B: ${db.pasword}: postgresql database 'db' has no attribute 'pasword' "
                "(use one of: host, port, user, password, database, url)",
            ),
            at(
                12,
                10,
                "services.api.env.C: ${api.user}: service 'api' has no attribute 'user' (use one of: host, port, url)",
            ),
            at(
                13,
                10,
                "services.api.env.D: ${environment.id}: the environment has no attribute 'id' "
                "(use one of: name, namespace)",
            ),
            at(
                14,
                10,
                "services.api.env.E: ${env.NOPE}: environment variable NOPE is not set "
                "(give a default: ${env.NOPE:-value})",
            ),
            at(
                17,
                10,
                "services.api.env.H: ${suite.url}: 'suite' is a test; only databases and services can be referenced",
            ),
        ],
    ),
    "reference syntax": (
        HEAD + "services:\n  api:\n    image: app\n    env:\n      A: '${db'\n      B: '${db}'\n",
        [
            at(7, 10, "services.api.env.A: unterminated reference starting at '${db'"),
            at(
                8,
                10,
                "services.api.env.B: invalid reference '${db}': expected ${name.attribute}, ${env.NAME} or "
                "${env.NAME:-default}",
            ),
        ],
    ),
    "names used twice across the maps": (
        HEAD
        + "databases:\n  api: {engine: postgresql}\nservices:\n  api:\n    image: app\ntests:\n  api:\n    image: t\n",
        [
            at(
                6,
                3,
                "services.api: name 'api' is already used in databases; names of databases, services and tests "
                "must be unique",
            ),
            at(
                9,
                3,
                "tests.api: name 'api' is already used in databases; names of databases, services and tests "
                "must be unique",
            ),
        ],
    ),
    "component names": (
        HEAD + "services:\n  Api:\n    image: a\n  env:\n    image: b\n",
        [
            at(
                4,
                3,
                "services.Api: 'Api' is not a valid name: use lower-case letters, digits and '-', "
                "starting and ending with a letter or digit",
            ),
            at(6, 3, "services.env: 'env' is reserved for references (${env.…})"),
        ],
    ),
    "secret-bearing references in image, command and args": (
        HEAD
        + "databases:\n  db: {engine: postgresql}\nservices:\n  api:\n    image: app:${db.password}\n"
        + "    command: [run, '--db=${db.url}']\n    args: --pw ${db.password}\n    env:\n      OK: ${db.password}\n"
        + "tests:\n  t:\n    image: t\n    args: ['${db.url}']\n",
        [
            at(7, 12, "services.api.image: ${db.password} " + PASSWORD_IN_COMMAND),
            at(8, 20, "services.api.command[1]: ${db.url} " + URL_IN_COMMAND),
            at(9, 11, "services.api.args: ${db.password} " + PASSWORD_IN_COMMAND),
            at(15, 12, "tests.t.args[0]: ${db.url} " + URL_IN_COMMAND),
        ],
    ),
    "secret-bearing reference in a database image and the reporting url": (
        HEAD
        + "databases:\n  db: {engine: mysql}\n  other:\n    engine: postgresql\n    image: 'pg:${db.password}'\n"
        + "reporting:\n  redis:\n    url: ${db.url}\n",
        [
            at(7, 12, "databases.other.image: ${db.password} " + PASSWORD_IN_COMMAND),
            at(10, 10, "reporting.redis.url: ${db.url} " + URL_IN_COMMAND),
        ],
    ),
    "service url without a port": (
        HEAD + "services:\n  worker:\n    image: w\n  api:\n    image: a\n    env:\n      W: ${worker.url}\n",
        [at(9, 10, "services.api.env.W: ${worker.url}: service 'worker' has no port, so it has no address")],
    ),
    "redis has no password": (
        HEAD + "databases:\n  cache: {engine: redis}\nservices:\n  api:\n    image: a\n    env:\n"
        "      P: ${cache.password}\n      U: ${cache.url}\n      N: ${cache.database}\n",
        [
            at(
                9,
                10,
                "services.api.env.P: ${cache.password}: redis database 'cache' has no attribute 'password' "
                "(use one of: host, port, url)",
            ),
            at(
                11,
                10,
                "services.api.env.N: ${cache.database}: redis database 'cache' has no attribute 'database' "
                "(use one of: host, port, url)",
            ),
        ],
    ),
    "redis has no database name": (
        HEAD + "databases:\n  cache:\n    engine: redis\n    database: zero\n",
        [at(6, 15, "databases.cache.database: redis databases have no database name")],
    ),
    "quota too small": (
        HEAD
        + "resources:\n  quota:\n    cpu: 500m\n    memory: 1Gi\n    pods: 2\ndatabases:\n  db: {engine: postgresql}\n"
        + "services:\n  api:\n    image: a\n    replicas: 2\n",
        [
            at(
                5,
                10,
                "resources.quota.cpu: quota 500m is less than the environment needs: 3 "
                "(the sum of container limits x replicas, plus the largest test)",
            ),
            at(
                6,
                13,
                "resources.quota.memory: quota 1Gi is less than the environment needs: 3Gi "
                "(the sum of container limits x replicas, plus the largest test)",
            ),
            at(
                7,
                11,
                "resources.quota.pods: quota allows 2 pods but the environment needs 3 "
                "(service replicas + one per database + one test at a time)",
            ),
        ],
    ),
    "quota counts the largest test": (
        HEAD
        + "resources:\n  quota: {cpu: '2', memory: 4Gi, pods: 2}\nservices:\n  api: {image: a}\n"
        + "tests:\n  small: {image: t, resources: {limits: {cpu: 500m, memory: 128Mi}}}\n"
        + "  big: {image: t, resources: {limits: {cpu: '1500m', memory: 1Gi}}}\n",
        [
            at(
                4,
                16,
                "resources.quota.cpu: quota 2 is less than the environment needs: 2500m "
                "(the sum of container limits x replicas, plus the largest test)",
            ),
        ],
    ),
    "requests above limits": (
        HEAD
        + "services:\n  api:\n    image: a\n    resources:\n      requests: {cpu: '2', memory: 2Gi}\n"
        + "      limits: {cpu: '1'}\n",
        [
            at(7, 23, "services.api.resources: requests.cpu 2 is more than limits.cpu 1"),
            at(7, 36, "services.api.resources: requests.memory 2Gi is more than limits.memory 1Gi"),
        ],
    ),
    "default requests above default limits": (
        HEAD + "resources:\n  defaults:\n    requests: {memory: 2Gi}\n",
        [at(5, 24, "resources.defaults: requests.memory 2Gi is more than limits.memory 1Gi")],
    ),
    "duplicate key": (
        HEAD + "services:\n  api: {image: a}\n  api: {image: b}\n",
        [at(5, 3, "services.api: duplicate key (first defined at line 4, column 3)")],
    ),
    "syntax error": (
        HEAD + "services: [\n",
        [at(4, 1, "YAML syntax error: did not find expected node content")],
    ),
    "wrong types": (
        HEAD
        + "services:\n  a: 5\n  b:\n    image: [x]\n    env: [1]\n    command: 5\n    dependsOn: db\n"
        + "databases: []\nlabels: x\n",
        [
            at(4, 6, "services.a: must be a mapping"),
            at(6, 12, "services.b.image: must be a string"),
            at(7, 10, "services.b.env: must be a mapping of variable names to values"),
            at(8, 14, "services.b.command: must be a list of strings, or a string split like a shell would"),
            at(9, 16, "services.b.dependsOn: must be a list"),
            at(10, 12, "databases: must be a mapping"),
            at(11, 9, "labels: must be a mapping of label keys to values"),
        ],
    ),
    "env entries": (
        HEAD + "services:\n  api:\n    image: a\n    env:\n      1BAD: x\n",
        [
            at(
                7,
                7,
                "services.api.env.1BAD: invalid variable name "
                "(letters, digits, '_', '.', '-'; not starting with a digit)",
            )
        ],
    ),
    "env value missing": (
        HEAD + "services:\n  api:\n    image: a\n    env:\n      EMPTY:\n",
        [at(7, 7, 'services.api.env.EMPTY: must have a value (write "" for an empty one)')],
    ),
    "unsplittable command": (
        HEAD + "services:\n  api:\n    image: a\n    command: echo 'unbalanced\n",
        [at(6, 14, "services.api.command: cannot split into words: No closing quotation")],
    ),
    "database name and version": (
        HEAD + "databases:\n  db:\n    engine: mysql\n    version: 8.0 beta\n    database: has space\n",
        [
            at(6, 14, "databases.db.version: invalid image tag '8.0 beta'"),
            at(7, 15, "databases.db.database: must be 1-63 characters of letters, digits, '_' and '-'"),
        ],
    ),
    "empty and spaced images": (
        HEAD
        + "services:\n  a: {image: ''}\n  b: {image: 'my app:1'}\n"
        + "databases:\n  d: {engine: redis, image: ' '}\ntests:\n  t: {image: ''}\n",
        [
            at(4, 14, "services.a.image: must not be empty"),
            at(5, 14, "services.b.image: invalid image 'my app:1': an image reference has no spaces"),
            at(7, 29, "databases.d.image: must not be empty"),
            at(9, 14, "tests.t.image: must not be empty"),
        ],
    ),
    "service names must start with a letter": (
        HEAD + "services:\n  2fa: {image: a, port: 80}\n  3w: {image: a}\ndatabases:\n  4db: {engine: redis}\n",
        [
            at(4, 3, "services.2fa: '2fa' must start with a letter: it also names a Kubernetes Service"),
            at(7, 3, "databases.4db: '4db' must start with a letter: it also names a Kubernetes Service"),
        ],
    ),
    "a final line break is not part of a valid name or value": (
        'apiVersion: envspec/v1\nname: "demo\\n"\nttl: "1h\\n"\n'
        + 'resources: {defaults: {limits: {cpu: "1\\n"}}}\nlabels: {a: "b\\n"}\n',
        [
            at(
                2,
                7,
                "name: 'demo\\n' is not a valid name: use lower-case letters, digits and '-', "
                "starting and ending with a letter or digit",
            ),
            at(3, 6, "ttl: invalid duration '1h\\n': expected e.g. 30s, 45m, 2h, 1h30m or 7d"),
            at(4, 38, "resources.defaults.limits.cpu: invalid quantity '1\\n': expected e.g. 500m, 2, 256Mi or 1Gi"),
            at(5, 13, f"labels.a: invalid label value 'b\\n': {LABEL_VALUE_RULE}"),
        ],
    ),
    "merge keys keep the explicit key's position": (
        HEAD + "services:\n  a: &base {image: x, port: 80}\n  b:\n    <<: *base\n    port: 99999\n",
        [at(7, 11, "services.b.port: must be an integer between 1 and 65535")],
    ),
}


@pytest.mark.parametrize("case", list(BROKEN), ids=list(BROKEN))
def test_broken_spec(case: str) -> None:
    text, expected = BROKEN[case]
    assert errors(text, {"SET": "1"}) == expected


def test_every_problem_of_a_multi_error_spec_is_reported_at_once() -> None:
    text = (
        "apiVersion: envspec/v1\n"  # 1
        "name: Demo\n"  # 2
        "ttl: forever\n"  # 3
        "labels: {'a b': c}\n"  # 4
        "databases:\n"  # 5
        "  db: {engine: oracle}\n"  # 6
        "services:\n"  # 7
        "  api:\n"  # 8
        "    image: app\n"  # 9
        "    replicas: -2\n"  # 10
        "  web:\n"  # 11
        "    image: web\n"  # 12
        "    dependsOn: [nothing]\n"  # 13
        "    env: {X: '${nope.url}', Y: '${env.MISSING}'}\n"  # 14
        "    args: ['${web.url}']\n"  # 15
        "tests:\n"  # 16
        "  t: {image: x, retries: -1}\n"  # 17
    )
    with pytest.raises(SpecError) as info:
        check(text)
    lines = [str(p) for p in info.value.problems]
    assert [line.split(": ", 2)[:2] for line in lines] == [
        [f"{SOURCE}:2:7", "name"],
        [f"{SOURCE}:3:6", "ttl"],
        [f"{SOURCE}:4:10", "labels.a b"],
        [f"{SOURCE}:6:16", "databases.db.engine"],
        [f"{SOURCE}:10:15", "services.api.replicas"],
        [f"{SOURCE}:13:17", "services.web.dependsOn[0]"],
        [f"{SOURCE}:14:14", "services.web.env.X"],
        [f"{SOURCE}:14:32", "services.web.env.Y"],
        [f"{SOURCE}:15:12", "services.web.args[0]"],
        [f"{SOURCE}:17:26", "tests.t.retries"],
    ]
    assert info.value.message.endswith("\n10 problems found")
    assert info.value.message.splitlines()[:-1] == lines
    assert info.value.exit_code == 1


def test_problems_are_sorted_by_position() -> None:
    text = HEAD + "services:\n  b: {image: x, replicas: -1}\n  a: {image: x, replicas: -1}\n"
    assert errors(text) == [
        at(4, 27, "services.b.replicas: must be an integer between 0 and 2147483647"),
        at(5, 27, "services.a.replicas: must be an integer between 0 and 2147483647"),
    ]


# --- env references and environment variables --------------------------------------------------


def test_env_reference_with_default_is_valid_and_set_variables_are_recorded() -> None:
    text = (
        HEAD
        + "services:\n  api:\n    image: 'app:${env.TAG}'\n    env:\n"
        + "      A: ${env.UNSET:-fallback}\n      B: ${env.EMPTY}\n"
    )
    valid = check(text, {"TAG": "1.2", "EMPTY": "", "UNRELATED": "x"})
    # only the variables the spec reads are kept, so the compiler sees nothing else
    assert valid.environ == {"EMPTY": "", "TAG": "1.2"}


def test_an_empty_environment_variable_counts_as_set() -> None:
    check(HEAD + "services:\n  api:\n    image: 'app:1${env.TAG}'\n", {"TAG": ""})


def test_ttl_defaults() -> None:
    assert check(HEAD).ttl == "1h"
    assert check(HEAD).ttl_seconds == 3600
    assert check(HEAD, {"K8S_TTL_MINUTES": "90"}).ttl == "1h30m"
    assert check(HEAD, {"K8S_TTL_MINUTES": "90"}).ttl_seconds == 5400
    assert check(HEAD, {"K8S_TTL_MINUTES": " "}).ttl == "1h"
    # the spec wins over the environment variable
    assert check(HEAD + "ttl: 2h\n", {"K8S_TTL_MINUTES": "90"}).ttl == "2h"
    never = check(HEAD + "ttl: never\n", {"K8S_TTL_MINUTES": "90"})
    assert (never.ttl, never.ttl_seconds) == ("never", None)
    assert check(HEAD + "ttl: 90m\n").ttl == "1h30m"


@pytest.mark.parametrize("value", ["abc", "0", "-5", "1.5", "60m"])
def test_invalid_ttl_minutes_variable(value: str) -> None:
    assert errors(HEAD, {"K8S_TTL_MINUTES": value}) == [
        at(1, 1, f"ttl: environment variable K8S_TTL_MINUTES={value!r} must be a whole number of minutes > 0")
    ]


def test_invalid_ttl_minutes_variable_is_ignored_when_the_spec_sets_ttl() -> None:
    assert check(HEAD + "ttl: 5m\n", {"K8S_TTL_MINUTES": "abc"}).ttl == "5m"


def test_namespace_prefix_defaults() -> None:
    assert check(HEAD).namespace_prefix == "envspec"
    assert check(HEAD, {"K8S_NAMESPACE_PREFIX": "qa"}).namespace_prefix == "qa"
    assert check(HEAD, {"K8S_NAMESPACE_PREFIX": ""}).namespace_prefix == "envspec"
    assert check(HEAD + "namespacePrefix: team\n", {"K8S_NAMESPACE_PREFIX": "qa"}).namespace_prefix == "team"


def test_invalid_namespace_prefix() -> None:
    assert errors(HEAD, {"K8S_NAMESPACE_PREFIX": "Bad_Prefix"}) == [
        at(
            1,
            1,
            "namespacePrefix: environment variable K8S_NAMESPACE_PREFIX='Bad_Prefix': 'Bad_Prefix' is not a valid "
            "name: use lower-case letters, digits and '-', starting and ending with a letter or digit",
        )
    ]
    assert errors(HEAD + "namespacePrefix: -x\n") == [
        at(
            3,
            18,
            "namespacePrefix: '-x' is not a valid name: use lower-case letters, digits and '-', "
            "starting and ending with a letter or digit",
        )
    ]


def test_default_resources_precedence_spec_over_variable_over_builtin() -> None:
    builtin = check(HEAD).default_resources
    assert builtin.requests == {"cpu": "100m", "memory": "256Mi"}
    assert builtin.limits == {"cpu": "1000m", "memory": "1Gi"}

    environ = {"DEFAULT_CPU_LIMIT": "2", "DEFAULT_MEMORY_LIMIT": "2Gi"}
    from_variables = check(HEAD, environ).default_resources
    assert from_variables.limits == {"cpu": "2", "memory": "2Gi"}
    assert from_variables.requests == {"cpu": "100m", "memory": "256Mi"}

    spec = HEAD + "resources:\n  defaults:\n    limits: {cpu: 750m}\n"
    mixed = check(spec, environ).default_resources
    assert mixed.limits == {"cpu": "750m", "memory": "2Gi"}


def test_a_low_default_limit_lowers_the_builtin_default_request() -> None:
    low = check(HEAD, {"DEFAULT_CPU_LIMIT": "50m", "DEFAULT_MEMORY_LIMIT": "128Mi"}).default_resources
    assert low.limits == {"cpu": "50m", "memory": "128Mi"}
    assert low.requests == {"cpu": "50m", "memory": "128Mi"}
    written = check(HEAD + "resources:\n  defaults:\n    limits: {memory: 64Mi}\n").default_resources
    assert written.requests == {"cpu": "100m", "memory": "64Mi"}


@pytest.mark.parametrize("variable", ["DEFAULT_CPU_LIMIT", "DEFAULT_MEMORY_LIMIT"])
def test_invalid_default_limit_variable(variable: str) -> None:
    assert errors(HEAD, {variable: "lots"}) == [
        at(1, 1, f"resources: environment variable {variable}='lots' is not a valid quantity")
    ]


def test_validate_reads_only_the_environ_argument(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("K8S_TTL_MINUTES", "5")
    monkeypatch.setenv("K8S_NAMESPACE_PREFIX", "fromos")
    monkeypatch.setenv("TAG", "os")
    valid = check(HEAD + "services:\n  api:\n    image: 'a:${env.TAG:-none}'\n", {})
    assert (valid.ttl, valid.namespace_prefix, valid.environ) == ("1h", "envspec", {})


# --- resolved values --------------------------------------------------------------------------


def test_component_resources_and_auto_quota() -> None:
    text = (
        HEAD
        + "resources:\n  defaults:\n    requests: {cpu: 50m, memory: 64Mi}\n    limits: {cpu: 500m, memory: 512Mi}\n"
        + "databases:\n  db:\n    engine: postgresql\n    resources: {limits: {cpu: '1', memory: 1Gi}}\n"
        + "services:\n  api:\n    image: a\n    replicas: 3\n"
        + "  small:\n    image: a\n    resources: {limits: {cpu: 20m}}\n"
        + "tests:\n  t1: {image: t}\n  t2: {image: t, resources: {limits: {cpu: '2', memory: 100Mi}}}\n"
    )
    valid = check(text)
    assert valid.resources["db"].limits == {"cpu": "1", "memory": "1Gi"}
    assert valid.resources["db"].requests == {"cpu": "50m", "memory": "64Mi"}
    # a limit below the default request brings the request down with it
    assert valid.resources["small"].requests == {"cpu": "20m", "memory": "64Mi"}
    # cpu: db 1 + api 3 x 500m + small 20m + largest test 2 = 4520m
    assert valid.quota_cpu == "4520m"
    # memory: db 1Gi + api 3 x 512Mi + small 512Mi + largest test 512Mi = 3.5Gi
    assert valid.quota_memory == "3584Mi"
    assert valid.quota_pods == 10


def test_auto_quota_of_an_empty_environment() -> None:
    valid = check(HEAD)
    # No workloads, no tests: room for one default-sized (ad-hoc) test only.
    assert (valid.quota_cpu, valid.quota_memory, valid.quota_pods) == ("1", "1Gi", 10)


def test_explicit_quota_that_fits_is_kept() -> None:
    valid = check(
        HEAD + "resources:\n  quota: {cpu: '8', memory: 16Gi, pods: 3}\nservices:\n  a: {image: x, replicas: 3}\n"
    )
    assert (valid.quota_cpu, valid.quota_memory, valid.quota_pods) == ("8", "16Gi", 3)


def test_service_layers() -> None:
    text = (
        HEAD
        + "databases:\n  db: {engine: postgresql}\nservices:\n"
        + "  gateway: {image: g, dependsOn: [catalog]}\n  catalog: {image: c, port: 80, dependsOn: [db, inventory]}\n"
        + "  inventory: {image: i, port: 80}\n  lone: {image: l}\n"
    )
    assert check(text).service_layers == [["inventory", "lone"], ["catalog"], ["gateway"]]


def test_numbers_and_booleans_in_env_become_strings() -> None:
    text = HEAD + "services:\n  api:\n    image: a\n    env: {N: 20, F: 1.5, B: false, S: 'x'}\n"
    assert check(text).spec.services["api"].env == {"N": "20", "F": "1.5", "B": "false", "S": "x"}


def test_command_strings_are_split_like_a_shell() -> None:
    text = HEAD + "services:\n  api:\n    image: a\n    command: python -m 'my app'\n    args: [--n, 3]\n"
    service = check(text).spec.services["api"]
    assert service.command == ["python", "-m", "my app"]
    assert service.args == ["--n", "3"]


@pytest.mark.parametrize("example", sorted(p.parent.name for p in (REPO / "examples").glob("*/maestro-env.yaml")))
def test_examples_are_valid(example: str) -> None:
    path = REPO / "examples" / example / "maestro-env.yaml"
    valid = validate(load_text(path.read_text(encoding="utf-8"), str(path)), {})
    assert valid.spec.name == example
