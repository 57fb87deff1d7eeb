#!/usr/bin/env bash
# Set up everything the tests need and run the whole suite:
# Mosquitto, InfluxDB 1.x + nginx (v2 write-path rewrite), Chromium and mbpoll from the
# OS packages; the Python packages in .venv. The tests start their own servers.
# Each OS package is looked up by name (apt-cache) before anything is installed; a part
# that is already on PATH is used as it is. Extra arguments go to pytest.
source "$(dirname "$0")/_common.sh"

on_path() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/usr/bin/$1" ]; }

influxd_v1() {
  # The tests run influxd 1.x (-config, /write, /query); InfluxDB 2.x's influxd is not it.
  on_path influxd && PATH="$PATH:/usr/sbin" influxd version 2>/dev/null | grep -q '^InfluxDB v1\.'
}

chromium_usable() {
  # The name the tests launch (chromium, else chromium-browser), unless it is a snap shim.
  local exe
  exe="$(command -v chromium || command -v chromium-browser || true)"
  [ -n "$exe" ] || return 1
  case "$(readlink -f "$exe")" in /snap/* | */snap) return 1 ;; esac
  ! grep -qs 'snap' "$exe"
}

install=() missing=() notes=()
require() {
  # require CHECK WHAT PACKAGE...: install the first available PACKAGE unless CHECK passes.
  local check="$1" what="$2" pkg
  shift 2
  if $check; then
    return 0
  fi
  if pick_package pkg "$@"; then
    install+=("$pkg")
  else
    missing+=("$what (looked for the package(s): $*)")
  fi
}
optional() {
  # optional WHAT PACKAGE...: install it when this release has it; tests that need it skip.
  local what="$1" pkg
  shift
  if pick_package pkg "$@"; then
    install+=("$pkg")
  else
    notes+=("$what: not in this release's packages ($*); the tests that need it are skipped")
  fi
}

require "on_path mosquitto" "the Mosquitto MQTT broker" mosquitto
require influxd_v1 "an InfluxDB 1.x server, influxd (Debian 12 ships 1.6.7 as 'influxdb'; \
InfluxData's own apt repository has 1.8 under the same name)" influxdb
require "on_path nginx" "nginx, for the InfluxDB v2 write-path rewrite" nginx nginx-light nginx-core
require chromium_usable "a Chromium that Playwright can launch, as 'chromium' or \
'chromium-browser' on PATH (Ubuntu's chromium-browser package only installs a snap, which \
does not qualify; install a Chromium or Chrome .deb and link it as 'chromium')" \
  chromium chromium-browser
optional "mosquitto_sub" mosquitto-clients
optional "mbpoll" mbpoll
optional "CJK fonts for the dashboard's screenshots" fonts-wqy-microhei

if [ ${#missing[@]} -gt 0 ]; then
  echo "cannot set up the tests: this system's package sources lack" >&2
  printf '  - %s\n' "${missing[@]}" >&2
  echo "install those by other means (or add the sources that carry them: on Ubuntu, enable" \
    "the 'universe' component) and run again. Run end to end on: Debian 12." >&2
  exit 1
fi
for note in "${notes[@]}"; do
  echo "note: $note" >&2
done
if [ ${#install[@]} -gt 0 ]; then
  apt_install "${install[@]}"
fi
ensure_venv test
status=0
.venv/bin/python -m pytest -ra "$@" || status=$?
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure" >&2
  exit 1
fi
exit "$status"
