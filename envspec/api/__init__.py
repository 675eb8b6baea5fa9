"""The REST API of `envspec serve`: a FastAPI application over `envspec.service`."""
