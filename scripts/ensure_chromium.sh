#!/usr/bin/env bash
# Installs Debian's chromium-headless-shell for the browser tests when it is missing: Chromium's
# headless-only build (the one Playwright runs for headless tests; its own browser download does not
# work offline). tests/browser_launch.py drives it; LRC_CHROMIUM chooses another (the full chromium).
set -euo pipefail
if [ -x /usr/bin/chromium-headless-shell ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
echo "Installing chromium-headless-shell (Debian package) for the browser tests..."
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium-headless-shell >/dev/null
command -v chromium-headless-shell
