#!/bin/sh
# Headless Chromium (Debian's `chromium` package) for the report-page browser test.
# Idempotent: does nothing when chromium is already on PATH. Needs root to install.
set -eu
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "ensure_chromium: chromium is missing; install Debian's 'chromium' package as root" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# another apt run (services.sh installs packages too) may hold the lock: wait for it
apt_get() { apt-get -o DPkg::Lock::Timeout=300 "$@"; }
apt_get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null 2>&1 || {
    apt_get update -qq >/dev/null
    apt_get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
}
command -v chromium >/dev/null
