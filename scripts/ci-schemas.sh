#!/usr/bin/env bash
# Validate the CI templates in examples/ci/ against the schemas GitHub and Azure DevOps publish, offline.
#
# check-jsonschema ships both schemas (--builtin-schema vendor.github-workflows, vendor.azure-pipelines), so nothing is
# fetched at run time. It lives in its own virtual environment (.venv-ci-schemas at the repository root), installed
# with hashes from locks/ci-schemas.txt (locks/README.md) and rebuilt only when that lock changes, the way
# scripts/checkov.sh installs checkov: a CI linter is no runtime dependency of cvops.
# Azure's schema needs `--regex-variant python`: its patterns crash the default regex engine ("Invalid character
# escape"). Microsoft's schema is known to reject some valid pipelines; the templates here stay within what it accepts.
#
# Usage: scripts/ci-schemas.sh            (from anywhere; exit status non-zero when a file does not validate)
#        PYTHON=/path/to/python3.11 scripts/ci-schemas.sh
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${root}/.venv-ci-schemas"
# shellcheck source-path=SCRIPTDIR source=tool-venv.sh
source "${root}/scripts/tool-venv.sh"
tool_venv ci-schemas.sh "${venv}" "${root}/locks/ci-schemas.txt" "check-jsonschema"

cd "${root}"
status=0
shopt -s nullglob
github=(examples/ci/github/*.yml)
azure=(examples/ci/azure-pipelines/*.yml)
if [[ "${#github[@]}" -eq 0 || "${#azure[@]}" -eq 0 ]]; then
  echo "ci-schemas.sh: no workflow files under examples/ci/github or examples/ci/azure-pipelines" >&2
  exit 1
fi

echo "== check-jsonschema: examples/ci/github/*.yml (GitHub Actions workflows)"
"${venv}/bin/check-jsonschema" --builtin-schema vendor.github-workflows "${github[@]}" || status=1

echo "== check-jsonschema: examples/ci/azure-pipelines/*.yml (Azure Pipelines)"
"${venv}/bin/check-jsonschema" --builtin-schema vendor.azure-pipelines --data-transform azure-pipelines \
  --regex-variant python "${azure[@]}" || status=1

if [[ "${status}" -eq 0 ]]; then
  echo "ci-schemas.sh: every CI template validates"
fi
exit "${status}"
