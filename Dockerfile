# monitor in a container: `docker build -t monitor .` then
#   docker run -d -p 9108:9108 -v monitor-data:/var/lib/monitor \
#     -v "$PWD/config.yaml:/etc/monitor/config.yaml:ro" monitor
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY monitor ./monitor
COPY migrations ./migrations
RUN pip install . && rm -rf /src

RUN useradd --system --uid 10001 --home-dir /var/lib/monitor --shell /usr/sbin/nologin monitor \
    && mkdir -p /var/lib/monitor /etc/monitor \
    && chown monitor:monitor /var/lib/monitor
COPY deploy/docker/config.yaml /etc/monitor/config.yaml
COPY deploy/docker/healthcheck.py /usr/local/lib/monitor/healthcheck.py

USER monitor
WORKDIR /var/lib/monitor
VOLUME ["/var/lib/monitor"]
EXPOSE 9108

# The config the daemon runs; the health check reads its server.listen. Running another
# file (`docker run ... monitor run -c /path`)? Set MONITOR_CONFIG=/path too.
ENV MONITOR_CONFIG=/etc/monitor/config.yaml

# 200 while checks fire and results are stored, on the port of server.listen (not a
# fixed 9108); the slim image has no curl.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "/usr/local/lib/monitor/healthcheck.py"]

# SIGTERM (docker stop) lets running checks finish and flushes results; 10 s is enough.
STOPSIGNAL SIGTERM
ENTRYPOINT ["monitor"]
CMD ["run", "-c", "/etc/monitor/config.yaml"]
