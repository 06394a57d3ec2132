#!/bin/sh
# Make sure headless Chromium is present for tests/test_browser.py (Playwright drives /usr/bin/chromium;
# its own browser download cannot work offline). Installs Debian's `chromium` with apt-get when missing.
# Idempotent and quiet when Chromium is already there; never fails the caller: without Chromium the
# browser test skips and says why.
set -u
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
[ -x "$CHROMIUM" ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure_browser: $CHROMIUM missing and no apt-get here; install Chromium yourself (the browser test will skip)" >&2
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
        echo "ensure_browser: $CHROMIUM missing; run 'sudo apt-get install chromium' (the browser test will skip)" >&2
        exit 0
    fi
fi
echo "ensure_browser: installing Debian chromium (once)..." >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null 2>&1 || true
if ! $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1; then
    echo "ensure_browser: apt-get install chromium failed (the browser test will skip)" >&2
fi
[ -x "$CHROMIUM" ] && echo "ensure_browser: $("$CHROMIUM" --version 2>/dev/null)" >&2
exit 0
