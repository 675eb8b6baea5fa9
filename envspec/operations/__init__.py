"""The operations: one async function each, returning a typed result.

`up`, `down`, `status`, `ls`, `diff`, `extend`, `gc` and `watch` are what the CLI,
the worker and the REST API run; none of them re-implements a stage. Each takes a
cluster target and an `Emitter` for its events; `run_operation` wraps any of them
with the first and last event every operation has.
"""
