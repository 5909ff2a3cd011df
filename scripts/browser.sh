#!/usr/bin/env bash
# The browser the review page's tests drive (tests/browser): Debian's chromium at /usr/bin/chromium, used by Playwright
# as it is (no browser is ever downloaded). `make test` runs this before pytest:
#   - chromium present: nothing to do;
#   - missing, and root with apt-get (CI on Debian): install it quietly (apt-get update first only if needed);
#   - otherwise: one line saying the browser tests will be skipped (they skip themselves with the same reason).
# Never fails the build: a missing browser skips tests, it does not break the suite.
#
# Usage: bash scripts/browser.sh
set -euo pipefail

chromium="${CVOPS_CHROMIUM:-/usr/bin/chromium}"  # overridable for the script's own tests

if [[ -x "${chromium}" ]]; then
  exit 0
fi

if [[ "$(id -u)" -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
  echo "browser.sh: ${chromium} not found (as root: apt-get install chromium); the browser tests will be skipped" >&2
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
log="$(mktemp)"
trap 'rm -f "${log}"' EXIT
echo "browser.sh: installing Debian's chromium for the browser tests" >&2
if ! apt-get install -y -qq --no-install-recommends chromium >"${log}" 2>&1; then
  # A fresh image has no package lists yet: update them once, then try again.
  if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium; } >"${log}" 2>&1; then
    tail -n 5 "${log}" >&2
    echo "browser.sh: apt-get could not install chromium; the browser tests will be skipped" >&2
    exit 0
  fi
fi
if [[ ! -x "${chromium}" ]]; then
  echo "browser.sh: chromium installed but ${chromium} is missing; the browser tests will be skipped" >&2
fi
