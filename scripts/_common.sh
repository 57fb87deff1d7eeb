# Shared by scripts/demo.sh and scripts/test.sh: a Python >= 3.11 virtualenv in .venv, and
# OS packages checked by name (apt-cache) before they are installed.
# Run end to end on: Debian 12 (bookworm). Other Debian/Ubuntu releases: the names are
# checked at run time and a missing part is named, not guessed.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

die() {
  echo "$*" >&2
  exit 1
}

pkg_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

_apt_fresh=0
apt_refresh() {
  # Read the package lists once per run, and only when something is not installed yet.
  if [ "$_apt_fresh" -eq 0 ]; then
    as_root apt-get update -qq
    _apt_fresh=1
  fi
}

pkg_available() {
  # A real (not purely virtual) package with a version in the configured sources.
  apt-cache show "$1" 2>/dev/null | grep -q '^Version:'
}

pkg_is_snap_shim() {
  # Ubuntu's chromium-browser .deb only installs a snap: that is not a browser Playwright
  # can launch (the snap's private /tmp hides Playwright's profile directory).
  apt-cache show "$1" 2>/dev/null | grep -Eq '^(Pre-)?Depends:.*\bsnapd\b'
}

apt_install() {
  # Install the named Debian/Ubuntu packages that are not installed yet.
  local missing=()
  for pkg in "$@"; do
    pkg_installed "$pkg" || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing OS packages: ${missing[*]}"
    apt_refresh
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

pick_package() {
  # pick_package VAR NAME...: set VAR to the first NAME that is installed, else to the
  # first that apt-cache knows (reading the package lists once if none is); fail if none.
  local _pick_var="$1" _pick_pkg _pick_pass
  shift
  for _pick_pkg in "$@"; do
    if pkg_installed "$_pick_pkg"; then
      printf -v "$_pick_var" '%s' "$_pick_pkg"
      return 0
    fi
  done
  for _pick_pass in 1 2; do
    for _pick_pkg in "$@"; do
      if pkg_available "$_pick_pkg" && ! pkg_is_snap_shim "$_pick_pkg"; then
        printf -v "$_pick_var" '%s' "$_pick_pkg"
        return 0
      fi
    done
    if [ "$_pick_pass" -eq 2 ] || [ "$_apt_fresh" -eq 1 ]; then
      break
    fi
    apt_refresh
  done
  return 1
}

PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "Rongguan needs Python 3.11 or newer (set PYTHON=/path/to/python3.11)" >&2
  exit 1
fi
if ! "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null; then
  pick_package venv_pkg python3-venv ||
    die "python3-venv is not in this release's packages: install a Python 3.11+ with venv (PYTHON=...)"
  apt_install "$venv_pkg"
fi

ensure_venv() {
  # $1: the pip extra to install ("" for none)
  if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
  fi
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  if [ -n "${1:-}" ]; then
    .venv/bin/python -m pip install -q -e ".[$1]"
  else
    .venv/bin/python -m pip install -q -e .
  fi
}
