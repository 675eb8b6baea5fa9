"""The life of an environment after `up`: expiry and gc, extend, and the in-cluster janitor.

- `expiry`: pure rules (parse and write expiries, gc's decision per namespace);
- `gc`: the sweep and the `--loop`;
- `lease`: `extend` and the keep-alive `watch` uses;
- `janitor`: the manifests that run gc inside a cluster;
- `output`: human and JSON-lines sinks for the lifecycle events;
- `signals`: graceful stop on SIGINT/SIGTERM for the long-running commands.
"""
