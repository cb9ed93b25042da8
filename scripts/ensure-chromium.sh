#!/usr/bin/env bash
# Install Debian's chromium for the admin browser test when it is missing and we can (root + apt-get).
# Never fails the build: without chromium the browser test is skipped with a clear reason.
set -u
if command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]; then
  exit 0
fi
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-chromium: chromium missing and cannot install it (needs root and apt-get); the browser test will be skipped" >&2
  exit 0
fi
echo "ensure-chromium: installing Debian's chromium for the admin browser test" >&2
export DEBIAN_FRONTEND=noninteractive
if ! { apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends chromium >/dev/null; }; then
  echo "ensure-chromium: install failed; the browser test will be skipped" >&2
fi
exit 0
