#!/bin/sh
# Headless Chromium (Debian's `chromium` package) for the report-page browser test, and Debian's
# `chromium-driver` (chromedriver of the same version) that Selenium drives in the console's browser test.
# Idempotent: does nothing when both are already on PATH. Needs root to install.
set -eu
if { command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; } &&
    command -v chromedriver >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "ensure_chromium: chromium or chromedriver is missing; install Debian's 'chromium' and 'chromium-driver' packages as root" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# another apt run (services.sh installs packages too) may hold the lock: wait for it
apt_get() { apt-get -o DPkg::Lock::Timeout=300 "$@"; }
apt_get install -y -qq --no-install-recommends chromium chromium-driver fonts-dejavu-core >/dev/null 2>&1 || {
    apt_get update -qq >/dev/null
    apt_get install -y -qq --no-install-recommends chromium chromium-driver fonts-dejavu-core >/dev/null
}
command -v chromium >/dev/null && command -v chromedriver >/dev/null
