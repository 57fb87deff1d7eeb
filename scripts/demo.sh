#!/usr/bin/env bash
# Set up Rongguan in .venv (pip only) and run the whole simulated system.
# Extra arguments go to `rongguan demo` (e.g. --port 8080).
source "$(dirname "$0")/_common.sh"
ensure_venv ""
exec .venv/bin/rongguan demo "$@"
