"""Reporting to places outside the process: Redis Streams."""
