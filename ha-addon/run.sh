#!/bin/sh
# Turn the add-on options into the bridge's config, then become the bridge (PID 1 gets
# SIGTERM from the Supervisor and the bridge drains cleanly).
set -eu
python3 /app/addon_config.py /data/options.json /data/sophonfog-bridge.yaml
exec sophonfog-bridge run --config /data/sophonfog-bridge.yaml
