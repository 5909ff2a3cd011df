#!/usr/bin/env bash
# Re-resolve the lock files in locks/ and requirements.txt (see locks/README.md). Needs a package index; run it
# when a pin changes, then `make test`. Pass --upgrade to move every transitive package to its newest allowed version.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${root}"
python="${PYTHON:-python3.11}"
venv=".venv-lock"
upgrade=()
[[ "${1:-}" == "--upgrade" ]] && upgrade=(--upgrade)

if [[ ! -x "${venv}/bin/uv" ]] || [[ locks/tools.txt -nt "${venv}/bin/uv" ]]; then
  rm -rf "${venv}"
  "${python}" -m venv "${venv}"
  "${venv}/bin/python" -m pip install --quiet --disable-pip-version-check --require-hashes -r locks/tools.txt
fi
uv="${venv}/bin/uv"

# One target: what Azure's Flex Consumption remote build and the project's machines run (Linux, CPython 3.11).
common=(--generate-hashes --python-version 3.11 --python-platform linux --no-header --quiet "${upgrade[@]}")

header() {
  printf '# %s\n' "$@"
  printf '# Written by scripts/lock.sh (uv pip compile); do not edit by hand. How to update: locks/README.md.\n'
}

compile() {  # compile OUTPUT HEADER-LINE INPUT...
  local out="$1" what="$2"
  shift 2
  local body
  body="$(mktemp)"
  "${uv}" pip compile "${common[@]}" -o "${body}" "$@"
  { header "${what}"; cat "${body}"; } >"${out}.new"
  rm -f "${body}"
  mv "${out}.new" "${out}"
}

# The Function App's runtime set: what Azure's remote build installs, and nothing else.
compile requirements.txt "What Azure installs for the Function App: pyproject.toml's [project] dependencies and all they need." \
  pyproject.toml
# make setup: the runtime set, the [dev] extra, and the build backend of the editable install. Pins shared with
# requirements.txt are kept identical (a test checks) by resolving against it as constraints.
compile locks/dev.txt "What make setup installs (make test, make demo, make bench)." \
  pyproject.toml --extra dev locks/build.in --constraint requirements.txt
compile locks/checkov.txt "What scripts/checkov.sh installs into .venv-checkov." locks/checkov.in
compile locks/ci-schemas.txt "What scripts/ci-schemas.sh installs into .venv-ci-schemas." locks/ci-schemas.in
compile locks/tools.txt "What scripts/lock.sh installs into .venv-lock." locks/tools.in
echo "lock.sh: wrote requirements.txt locks/dev.txt locks/checkov.txt locks/ci-schemas.txt locks/tools.txt" >&2
