#!/usr/bin/env bash
# Create (or update) cvops on Azure in one command, then print the exports a `cvops` user needs. Never prints a key.
#
#   1. az deployment group create  main.bicep   storage, Custom Vision, Function App, monitoring, topic, roles
#   2. az functionapp deployment   zip deploy   the app's committed code (git archive of HEAD), built remotely
#   3. az deployment group create  blob-events.bicep   the Event Grid subscription (needs the running app's key)
#   4. print `export ...` lines (stdout; everything else goes to stderr, so `eval "$(infra/deploy.sh ...)"` works)
#
# --what-if runs `az deployment group what-if` for step 1 and changes nothing. --dry-run prints every command instead
# of running it and needs neither az nor a login. Run `infra/deploy.sh --help` for the options.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "${here}/.." && pwd)"
script="deploy.sh"
# shellcheck source-path=SCRIPTDIR source=common.sh
source "${here}/common.sh"

# What the Function App package holds, read from infra/app-package.txt (one path a line, # comments): the app root and
# the code function_app.py imports; tests/test_app_package.py checks it is exactly that. Paths absent from the commit
# are left out.
package_list="${here}/app-package.txt"
[[ -f "${package_list}" ]] || die "${package_list} not found: it lists what the Function App package holds"
APP_PATHS=()
while IFS= read -r line || [[ -n "${line}" ]]; do
  line="${line%%#*}"
  line="${line//[[:space:]]/}"
  if [[ -n "${line}" ]]; then
    APP_PATHS+=("${line}")
  fi
done < "${package_list}"
readonly APP_PATHS

resource_group="${CVOPS_RESOURCE_GROUP:-}"
location=""
parameters="${here}/main.parameters.json"
deployment="cvops"
function_name="route_new_blob"
operator_principal_id=""
skip_code=false
what_if=false
dry_run=false

usage() {
  cat <<USAGE
Usage: infra/deploy.sh --resource-group NAME [options]

Creates or updates the cvops resources in a resource group, publishes the Function App, subscribes it to new blobs in
the incoming container, and prints the exports for cvops (endpoints, resource id; never a key).

Options:
  -g, --resource-group NAME    Resource group (or set CVOPS_RESOURCE_GROUP). Required.
  -l, --location REGION        Create the resource group in REGION first (e.g. swedencentral).
  -p, --parameters FILE        Parameters file (default: infra/main.parameters.json).
  -n, --name NAME              Deployment name (default: cvops; the subscription step uses NAME-events).
      --function-name NAME     Name of the blob-triggered function (default: route_new_blob).
      --operator-principal-id ID
                               Object id of the user or service principal that runs cvops: gets the data roles.
      --skip-code              Infrastructure only: no code deployment, no Event Grid subscription.
      --what-if                Show what step 1 would change (az deployment group what-if); change nothing.
      --dry-run                Print each command instead of running it; needs no az and no login.
  -h, --help                   This help.
USAGE
}

while [[ $# -gt 0 ]]; do
  case "$1" in
    -g|--resource-group) need_value "$@"; resource_group="$2"; shift 2 ;;
    -l|--location) need_value "$@"; location="$2"; shift 2 ;;
    -p|--parameters) need_value "$@"; parameters="$2"; shift 2 ;;
    -n|--name) need_value "$@"; deployment="$2"; shift 2 ;;
    --function-name) need_value "$@"; function_name="$2"; shift 2 ;;
    --operator-principal-id) need_value "$@"; operator_principal_id="$2"; shift 2 ;;
    --skip-code) skip_code=true; shift ;;
    --what-if) what_if=true; shift ;;
    --dry-run) dry_run=true; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown option '$1'" ;;
  esac
done

[[ -n "${resource_group}" ]] || { usage >&2; die "no resource group: pass --resource-group NAME (or set CVOPS_RESOURCE_GROUP)"; }
[[ -f "${parameters}" ]] || die "parameters file '${parameters}' not found: pass --parameters FILE (see infra/main.parameters.json)"

# The main deployment's outputs, read in one call into OUT[name]; in a dry run, placeholders naming them.
declare -A OUT=()
read_outputs() {
  local names=("$@") query="[" name values=()
  for name in "${names[@]}"; do
    query+="properties.outputs.${name}.value,"
  done
  query="${query%,}]"
  if [[ "${dry_run}" == true ]]; then
    run az deployment group show --resource-group "${resource_group}" --name "${deployment}" --query "${query}" \
      --output tsv
    for name in "${names[@]}"; do
      OUT[${name}]="<${name}>"
    done
    return
  fi
  mapfile -t values < <(az deployment group show --resource-group "${resource_group}" --name "${deployment}" \
    --query "${query}" --output tsv | tr '\t' '\n')
  [[ "${#values[@]}" -eq "${#names[@]}" ]] \
    || die "deployment '${deployment}' in '${resource_group}' has not the expected outputs (${names[*]}): did step 1 succeed?"
  local i
  for i in "${!names[@]}"; do
    OUT[${names[i]}]="${values[i]}"
  done
}

require_az

main_args=(--resource-group "${resource_group}" --name "${deployment}"
  --template-file "${here}/main.bicep" --parameters "@${parameters}")
if [[ -n "${operator_principal_id}" ]]; then
  main_args+=(--parameters "operatorPrincipalId=${operator_principal_id}")
fi

if [[ "${what_if}" == true ]]; then
  if [[ -n "${location}" ]]; then
    echo "deploy.sh: --what-if creates nothing, not even the resource group; create it first if it does not exist." >&2
  fi
  echo "deploy.sh: what-if of the main deployment; nothing is changed." >&2
  run az deployment group what-if "${main_args[@]}"
  echo "deploy.sh: the code deployment and the Event Grid subscription (blob-events.bicep) follow the main deployment;" \
    "what-if cannot show them before the Function App exists." >&2
  exit 0
fi

if [[ -n "${location}" ]]; then
  run az group create --name "${resource_group}" --location "${location}" --output none
fi

echo "deploy.sh: 1/3 infrastructure (main.bicep)" >&2
run az deployment group create "${main_args[@]}" --output none

read_outputs functionAppName storageAccountName systemTopicName incomingContainer deadLetterContainer \
  trainingAccountName predictionAccountName trainingEndpoint predictionEndpoint predictionResourceId storageAccountUrl keysEnabled
function_app="${OUT[functionAppName]}"

if [[ "${skip_code}" == false ]]; then
  echo "deploy.sh: 2/3 code: zip deploy of the committed app to ${function_app}" >&2
  package_dir="${root}/.local"
  package="${package_dir}/cvops-functionapp.zip"
  paths=()
  for path in "${APP_PATHS[@]}"; do
    if git -C "${root}" cat-file -e "HEAD:${path}" 2>/dev/null; then
      paths+=("${path}")
    fi
  done
  [[ " ${paths[*]} " == *" function_app.py "* ]] || [[ "${dry_run}" == true ]] \
    || die "function_app.py is not in the last commit of ${root}: commit the app before deploying it."
  if [[ "${dry_run}" == false ]]; then
    mkdir -p "${package_dir}"
  fi
  run git -C "${root}" archive --format=zip --output "${package}" HEAD -- "${paths[@]}"
  run az functionapp deployment source config-zip --resource-group "${resource_group}" --name "${function_app}" \
    --src "${package}" --build-remote true --output none

  echo "deploy.sh: 3/3 Event Grid subscription to new blobs in the incoming container" >&2
  run az deployment group create --resource-group "${resource_group}" --name "${deployment}-events" \
    --template-file "${here}/blob-events.bicep" \
    --parameters "functionAppName=${function_app}" "storageAccountName=${OUT[storageAccountName]}" \
    "systemTopicName=${OUT[systemTopicName]}" "incomingContainer=${OUT[incomingContainer]}" \
    "deadLetterContainer=${OUT[deadLetterContainer]}" "functionName=${function_name}" \
    --output none
fi

# The exports for cvops: endpoints and ids only.
echo "deploy.sh: done. For cvops, run (or eval) these:" >&2
printf 'export VISION_TRAINING_ENDPOINT=%s\n' "$(quote "${OUT[trainingEndpoint]}")"
printf 'export VISION_PREDICTION_ENDPOINT=%s\n' "$(quote "${OUT[predictionEndpoint]}")"
printf 'export VISION_PREDICTION_RESOURCE_ID=%s\n' "$(quote "${OUT[predictionResourceId]}")"
printf 'export AZURE_STORAGE_ACCOUNT_URL=%s\n' "$(quote "${OUT[storageAccountUrl]}")"
if [[ "${OUT[keysEnabled]}" == "false" ]]; then
  printf '# keys are off: cvops must sign in with Entra ID (your az login; see --operator-principal-id)\n'
else
  printf '# keys: set VISION_TRAINING_KEY and VISION_PREDICTION_KEY yourself (never stored by this script), from\n'
  printf '#   az cognitiveservices account keys list --name %s --resource-group %s --query key1 --output tsv\n' \
    "$(quote "${OUT[trainingAccountName]}")" "$(quote "${resource_group}")"
  printf '#   az cognitiveservices account keys list --name %s --resource-group %s --query key1 --output tsv\n' \
    "$(quote "${OUT[predictionAccountName]}")" "$(quote "${resource_group}")"
fi
