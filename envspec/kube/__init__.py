"""Talking to the Kubernetes API: client, server-side apply, readiness and waiting.

Everything here is async (kr8s.asyncio) and knows nothing about specs or plans
beyond manifests as dicts; `envspec.runner` composes these pieces into `up`.
"""

from envspec.deferred import defer

# What kr8s and httpx import and envspec's use of them never reads: websockets (exec,
# port-forward), JSONPath queries, client-certificate parsing (`whoami`), and httpx's own
# command line, which `httpx/__init__` binds as `main` while it imports. Deferred before
# any module here imports kr8s or httpx (see envspec/deferred.py).
CLIENT_UNUSED: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("httpx_ws", ()),
    ("jsonpath", ()),
    ("cryptography.x509", ()),
    ("httpx._main", ("main",)),
)

for _name, _functions in CLIENT_UNUSED:
    defer(_name, _functions)
