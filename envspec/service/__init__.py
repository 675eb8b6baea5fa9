"""What the worker and the REST API share: settings and the request model."""
