#!/bin/sh
# Turn the add-on options into the bridge's config, then become the bridge (PID 1 gets
# SIGTERM from the Supervisor and the bridge drains cleanly).
# The Supervisor mounts /data (options.json, spool, snapshots) and /config (the add-on's
# config folder); SOPHONFOG_ADDON_DATA / SOPHONFOG_ADDON_CONFIG point elsewhere in tests.
set -eu
here=$(dirname "$0")
data=${SOPHONFOG_ADDON_DATA:-/data}
config=${SOPHONFOG_ADDON_CONFIG:-/config}
python3 "$here/addon_config.py" "$data/options.json" "$data/sophonfog-bridge.yaml" \
  "$config/sophonfog-bridge.yaml" "$data"
exec sophonfog-bridge run --config "$data/sophonfog-bridge.yaml"
