"""Placeholder until the cluster fixtures land."""
