# The Morgus worker / API image (docker-compose.temporal.yml builds it as morgus:local).
FROM python:3.11.11-slim-bookworm
ENV PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends git bubblewrap procps \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md constraints.txt ./
COPY morgus morgus
# The runtime dependencies only (no dev stack, no test tools), at the versions CI tested.
RUN pip install --no-cache-dir -c constraints.txt .
# The worker drives the host's Docker engine through the mounted socket; the API only needs Temporal and Postgres.
CMD ["python", "-m", "morgus.worker"]
