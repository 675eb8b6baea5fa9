# The envspec image: the CLI, which runs any of the three in-cluster services by its
# arguments (the Deployments' `args`):
#   envspec serve --host 0.0.0.0   the REST API on port 8004 (`envspec serve --print-manifests`)
#   envspec worker                 the Redis Streams worker
#   envspec gc --loop              the janitor (`envspec gc --print-manifests`; the default)
#
#   docker build -t envspec:0.1.0 .
#   envspec gc --print-manifests --image envspec:0.1.0 | kubectl apply -f -
#   envspec serve --print-manifests --image envspec:0.1.0 | kubectl apply -f -
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Only what the package is built from (pyproject.toml force-includes templates/,
# schemas/ and examples/ into the wheel); tests, benchmarks and caches stay out.
WORKDIR /src
COPY pyproject.toml README.md ./
COPY envspec ./envspec
COPY templates ./templates
COPY schemas ./schemas
COPY examples ./examples
RUN pip install . \
    && useradd --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin envspec

# Matches the janitor Deployment's runAsUser; the root filesystem can stay read-only
# (crash logs go to ENVSPEC_LOG_DIR, an emptyDir at /tmp in the Deployment).
USER 10001:10001
WORKDIR /
EXPOSE 8004
ENTRYPOINT ["envspec"]
CMD ["gc", "--loop"]
