"""envspec: declarative, ephemeral Kubernetes test environments."""

__version__ = "0.1.0"
