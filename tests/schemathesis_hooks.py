"""Schemathesis hooks for tests/test_api_schema.py (loaded through SCHEMATHESIS_HOOKS).

`POST /cleanup` on the shared test cluster must not delete other tests' expired
environments: every generated body that would sweep for real is made a dry run.
Bodies that are invalid anyway (not an object) are left as generated.
"""

from __future__ import annotations

from typing import Any

import schemathesis


@schemathesis.hook
def map_case(context: Any, case: Any) -> Any:
    sweeps = case.method.upper() == "POST" and case.path.endswith("/cleanup")
    if sweeps and (case.body is None or isinstance(case.body, dict)):
        case.body = {**(case.body or {}), "dry_run": True}
        case.media_type = "application/json"
    return case
