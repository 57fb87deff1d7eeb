#!/usr/bin/env bash
# Set up everything the tests need and run the whole suite:
# Mosquitto, InfluxDB 1.6.7 + nginx (v2 write-path rewrite), Chromium and mbpoll from the
# OS packages; the Python packages in .venv. The tests start their own servers.
# Extra arguments go to pytest.
source "$(dirname "$0")/_common.sh"
apt_install mosquitto mosquitto-clients influxdb nginx-light chromium fonts-wqy-microhei mbpoll
ensure_venv test
status=0
.venv/bin/python -m pytest -ra "$@" || status=$?
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure" >&2
  exit 1
fi
exit "$status"
