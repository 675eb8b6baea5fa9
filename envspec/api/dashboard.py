"""The dashboard at `GET /`: one server-rendered, read-only HTML page, no script, no external asset.

It lists the environments (status, ready count, age, time left) and the operations of
this server, and reloads itself every few seconds (`<meta http-equiv="refresh">`).
A browser cannot send a bearer header on a page load, so the token is given once in
a form (`POST /login`) and kept in a session cookie (HttpOnly, SameSite=Strict, gone
when the browser closes). The cookie is honoured for the dashboard only, never for
the API, so no other site can make a browser call the API with it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from html import escape
from typing import Any

from envspec import __version__
from envspec.meta import format_span

REFRESH_SECONDS = 5
COOKIE = "envspec_dashboard"

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #1d232a; background: #fafbfc; }
h1 { font-size: 1.4em; margin: 0 0 .2em; } h2 { font-size: 1.1em; margin: 1.6em 0 .4em; }
table { border-collapse: collapse; width: 100%; background: #fff; }
th, td { text-align: left; padding: .35em .8em; border-bottom: 1px solid #e3e6ea; white-space: nowrap; }
th { background: #f0f2f5; font-weight: 600; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.status { padding: .1em .5em; border-radius: .8em; font-size: .9em; }
.ready, .success { background: #d9f2df; color: #155d27; }
.creating, .running, .accepted, .deleting { background: #dde9fb; color: #1a4a8a; }
.not_ready { background: #fff1cc; color: #7a5600; }
.failed, .error, .interrupted { background: #fbdada; color: #8a1a1a; }
.muted { color: #6b7480; } form { display: inline; }
"""


def _page(title: str, body: str, *, refresh: bool) -> str:
    meta = f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">' if refresh else ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title>{meta}<style>{STYLE}</style></head><body>{body}</body></html>"
    )


def login_page(message: str = "") -> str:
    notice = f'<p class="status failed">{escape(message)}</p>' if message else ""
    form = (
        '<form method="post" action="/login"><label>API token '
        '<input type="password" name="token" autocomplete="current-password" required autofocus></label> '
        "<button>Show</button></form>"
    )
    return _page(
        "envspec",
        f"<h1>envspec</h1><p class=muted>The dashboard needs an API token (read-only is enough); "
        f"it is kept for this browser session only.</p>{notice}{form}",
        refresh=False,
    )


def _badge(status: str) -> str:
    return f'<span class="status {escape(status)}">{escape(status.replace("_", " "))}</span>'


def _span(seconds: Any) -> str:
    if not isinstance(seconds, int):
        return '<span class="muted">never</span>'
    return "expired" if seconds < 0 else format_span(seconds)


def dashboard_page(
    environments: Iterable[Mapping[str, Any]], operations: Iterable[Mapping[str, Any]], *, with_token: bool = True
) -> str:
    rows = [
        "<tr>"
        f"<td>{escape(str(env['name']))}</td><td>{escape(str(env['namespace']))}</td>"
        f"<td>{_badge(str(env['status']))}</td>"
        f"<td class=num>{int(env['ready'])}/{int(env['total'])}</td>"
        f"<td class=num>{_span(env.get('age_seconds')) if env.get('age_seconds') is not None else '?'}</td>"
        f"<td class=num>{_span(env.get('expires_in_seconds'))}</td>"
        "</tr>"
        for env in environments
    ]
    environment_table = (
        '<table id="environments"><thead><tr><th>environment</th><th>namespace</th><th>status</th>'
        "<th>ready</th><th>age</th><th>time left</th></tr></thead><tbody>"
        + ("".join(rows) or "<tr><td colspan=6 class=muted>no environments</td></tr>")
        + "</tbody></table>"
    )
    runs = [
        "<tr>"
        f"<td>{escape(str(op.get('job_id')))}</td><td>{escape(str(op.get('operation')))}</td>"
        f"<td>{escape(str(op.get('environment') or '-'))}</td><td>{_badge(str(op.get('status')))}</td>"
        f"<td class=num>{format_span(int(op.get('duration_ms') or 0) / 1000)}</td>"
        f"<td>{escape(str(op.get('finished_at') or '-'))}</td>"
        f"<td>{escape(str(op.get('error') or ''))}</td>"
        "</tr>"
        for op in operations
    ]
    operation_table = (
        '<table id="operations"><thead><tr><th>job</th><th>operation</th><th>environment</th><th>result</th>'
        "<th>duration</th><th>finished</th><th>reason</th></tr></thead><tbody>"
        + ("".join(runs) or "<tr><td colspan=7 class=muted>none yet</td></tr>")
        + "</tbody></table>"
    )
    forget = ' · <form method="post" action="/logout"><button>forget token</button></form>' if with_token else ""
    header = (
        f"<h1>envspec</h1><p class=muted>environments on the cluster, refreshed every {REFRESH_SECONDS}s · "
        f"envspec {escape(__version__)}{forget}</p>"
    )
    return _page(
        "envspec environments",
        f"{header}<h2>Environments</h2>{environment_table}<h2>Last operations of this server</h2>{operation_table}",
        refresh=True,
    )
