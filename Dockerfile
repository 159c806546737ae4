# sophonfog-bridge: receives SophonFog / SE3 face events on :9528.
#   docker build -t sophonfog-bridge .
#   docker run -p 9528:9528 -v $PWD/config:/config -v sophonfog-data:/data sophonfog-bridge
# The config is /config/sophonfog-bridge.yaml; relative paths in it (spool, snapshots)
# land in /data, the working directory.

FROM python:3.12-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY sophonfog_bridge ./sophonfog_bridge
COPY plugins ./plugins
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.12-slim
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    SOPHONFOG_BRIDGE_CONFIG=/config/sophonfog-bridge.yaml \
    SOPHONFOG_HEALTHCHECK_URL=http://127.0.0.1:9528/healthz
COPY --from=build /wheels /wheels
# The versions tested, not whatever is newest the day the image is built (scripts/lock).
COPY requirements.lock /wheels/
# A CJK font, so that snapshot captions show Chinese names instead of boxes.
RUN apt-get update \
    && apt-get install -y --no-install-recommends fonts-wqy-microhei \
    && rm -rf /var/lib/apt/lists/*
RUN pip install --no-cache-dir --constraint /wheels/requirements.lock /wheels/*.whl \
    && rm -rf /wheels \
    && useradd --system --uid 10001 --user-group --home-dir /data --shell /usr/sbin/nologin sophonfog \
    && mkdir -p /config /data \
    && chown sophonfog:sophonfog /data
WORKDIR /data
USER sophonfog
VOLUME ["/config", "/data"]
EXPOSE 9528
# python, not curl: the slim image has no curl, and one less package to patch.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ['SOPHONFOG_HEALTHCHECK_URL'], timeout=4)"]
CMD ["sophonfog-bridge", "run"]
