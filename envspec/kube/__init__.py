"""Talking to the Kubernetes API: client, server-side apply, readiness and waiting.

Everything here is async (kr8s.asyncio) and knows nothing about specs or plans
beyond manifests as dicts; `envspec.apply` composes these pieces into `up`.
"""
