"""The API server's own request counts (`apiserver_request_total`), read with kubectl.

The benchmarks count requests on the server side, so every client is seen, not only
the one under test; each benchmark picks the series it cares about.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator

_SERIES = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>[0-9.e+]+)$")
_LABEL = re.compile(r'(\w+)="([^"]*)"')


def request_totals() -> Iterator[tuple[dict[str, str], int]]:
    """Every `apiserver_request_total` series: its labels (verb, resource, subresource, ...) and count."""
    raw = subprocess.run(
        ["kubectl", "get", "--raw", "/metrics"], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    for line in raw.splitlines():
        match = _SERIES.match(line)
        if match:
            yield dict(_LABEL.findall(match.group("labels"))), int(float(match.group("value")))
