#!/usr/bin/env bash
# Installs Debian's chromium-headless-shell for the browser tests when it is missing: Chromium's
# headless-only build (the one Playwright runs for headless tests; its own browser download does not
# work offline). tests/browser_launch.py drives it; LRC_CHROMIUM chooses another. Where it cannot be
# installed but the full chromium is there, the tests use that (slower: ~3.7 CPU s a page instead of 2.1).
set -euo pipefail
if [ -x /usr/bin/chromium-headless-shell ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
echo "Installing chromium-headless-shell (Debian package) for the browser tests..."
if $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium-headless-shell >/dev/null; then
  command -v chromium-headless-shell
elif [ -x /usr/bin/chromium ]; then
  echo "chromium-headless-shell could not be installed; the browser tests use /usr/bin/chromium."
else
  echo "Neither chromium-headless-shell nor chromium could be installed: the browser tests will fail (make chromium)." >&2
  exit 1
fi
