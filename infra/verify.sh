#!/usr/bin/env bash
# Check a cvops deployment the way an Azure operator would by hand, and a little more. Read-only: it changes nothing.
#
#   Custom Vision accounts   az cognitiveservices account list --query "[?kind=='CustomVision.Prediction']" (and Training)
#   prediction endpoint      az cognitiveservices account show --query "properties.endpoint", equal to the app's setting
#   containers and queue     every container and the backlog queue the deployment declares exist (needs a data role)
#   event subscription       provisioned, filtered to the incoming container and to PutBlob/PutBlockList/CopyBlob
#   function settings        every setting of the catalogue (functions/settings.py) is set; required ones are not empty
#   the function             the blob-triggered function is loaded by the host
#
# Prints PASS/FAIL per check and exits non-zero if any check fails. --dry-run prints the commands only.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "${here}/.." && pwd)"
script="verify.sh"
# shellcheck source-path=SCRIPTDIR source=common.sh
source "${here}/common.sh"

resource_group="${CVOPS_RESOURCE_GROUP:-}"
deployment="cvops"
function_name="route_new_blob"
subscription_name="cvops-incoming"
dry_run=false

usage() {
  cat <<USAGE
Usage: infra/verify.sh --resource-group NAME [options]

Checks the resources infra/deploy.sh created. Changes nothing.

Options:
  -g, --resource-group NAME    Resource group (or set CVOPS_RESOURCE_GROUP). Required.
  -n, --name NAME              Name of the main deployment (default: cvops).
      --function-name NAME     Name of the blob-triggered function (default: route_new_blob).
      --subscription NAME      Name of the Event Grid subscription (default: cvops-incoming).
      --dry-run                Print each command instead of running it; needs no az and no login.
  -h, --help                   This help.
USAGE
}

while [[ $# -gt 0 ]]; do
  case "$1" in
    -g|--resource-group) need_value "$@"; resource_group="$2"; shift 2 ;;
    -n|--name) need_value "$@"; deployment="$2"; shift 2 ;;
    --function-name) need_value "$@"; function_name="$2"; shift 2 ;;
    --subscription) need_value "$@"; subscription_name="$2"; shift 2 ;;
    --dry-run) dry_run=true; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown option '$1'" ;;
  esac
done
[[ -n "${resource_group}" ]] || { usage >&2; die "no resource group: pass --resource-group NAME (or set CVOPS_RESOURCE_GROUP)"; }
require_az

passed=0
failed=0
pass() { passed=$((passed + 1)); echo "PASS  $*"; }
fail() { failed=$((failed + 1)); echo "FAIL  $*"; }
# equal WHAT ACTUAL EXPECTED [HINT]
equal() {
  if [[ "$2" == "$3" ]]; then pass "$1: $2"; else fail "$1: '$2', expected '$3'${4:+ ($4)}"; fi
}

# Run a read-only command and print its output (stdout); in a dry run print the command only and yield "".
capture() {
  show "$@"
  if [[ "${dry_run}" == false ]]; then
    "$@"
  fi
}

# One line per word of a tsv answer (az prints a list of scalars on one line or several, depending on the query).
lines() { tr '\t' '\n' | sed '/^$/d'; }

contains() {
  local needle="$1" item
  shift
  for item in "$@"; do
    [[ "${item}" == "${needle}" ]] && return 0
  done
  return 1
}

# The deployment's outputs: names of what to check.
query="[properties.outputs.functionAppName.value,properties.outputs.storageAccountName.value,"
query+="properties.outputs.systemTopicName.value,properties.outputs.incomingContainer.value,"
query+="properties.outputs.predictionAccountName.value,properties.outputs.predictionEndpoint.value,"
query+="properties.outputs.backlogQueue.value,join(',',properties.outputs.containerNames.value)]"
outputs="$(capture az deployment group show --resource-group "${resource_group}" --name "${deployment}" \
  --query "${query}" --output tsv | lines || true)"
if [[ "${dry_run}" == true ]]; then
  outputs=$'<functionAppName>\n<storageAccountName>\n<systemTopicName>\nincoming\n<predictionAccountName>\n<predictionEndpoint>\ncvops-backlog\ntraining,holdout,incoming'
fi
mapfile -t out <<<"${outputs}"
[[ "${#out[@]}" -eq 8 ]] || die "cannot read the outputs of deployment '${deployment}' in '${resource_group}': \
did infra/deploy.sh finish? (az deployment group list --resource-group ${resource_group} --output table)"
function_app="${out[0]}" storage_account="${out[1]}" system_topic="${out[2]}" incoming="${out[3]}"
prediction_account="${out[4]}" prediction_endpoint="${out[5]}" backlog_queue="${out[6]}"
IFS=',' read -r -a containers <<<"${out[7]}"

echo "== Custom Vision accounts"
for kind in CustomVision.Training CustomVision.Prediction; do
  capture az cognitiveservices account list --resource-group "${resource_group}" \
    --query "[?kind=='${kind}']" --output table || true
  count="$(capture az cognitiveservices account list --resource-group "${resource_group}" \
    --query "length([?kind=='${kind}'])" --output tsv || true)"
  if [[ "${dry_run}" == false ]]; then
    if [[ "${count:-0}" -ge 1 ]]; then pass "${kind} accounts: ${count}"; else fail "no ${kind} account in ${resource_group}"; fi
  fi
done

echo "== prediction endpoint"
endpoint="$(capture az cognitiveservices account show --name "${prediction_account}" --resource-group "${resource_group}" \
  --query "properties.endpoint" --output tsv || true)"
[[ -z "${endpoint}" ]] || echo "${endpoint}"
setting="$(capture az functionapp config appsettings list --resource-group "${resource_group}" --name "${function_app}" \
  --query "[?name=='VISION_PREDICTION_ENDPOINT'].value | [0]" --output tsv || true)"
if [[ "${dry_run}" == false ]]; then
  if [[ -n "${endpoint}" && "${endpoint}" == "${prediction_endpoint}" && "${endpoint}" == "${setting}" ]]; then
    pass "prediction endpoint ${endpoint} (custom subdomain) is the app's VISION_PREDICTION_ENDPOINT"
  else
    fail "prediction endpoint '${endpoint}', deployment output '${prediction_endpoint}', app setting '${setting}' differ"
  fi
fi

echo "== containers and queue (needs a Storage Blob/Queue Data role: deploy.sh --operator-principal-id)"
mapfile -t present < <(capture az storage container list --account-name "${storage_account}" --auth-mode login \
  --query "[].name" --output tsv | lines || true)
mapfile -t queues < <(capture az storage queue list --account-name "${storage_account}" --auth-mode login \
  --query "[].name" --output tsv | lines || true)
if [[ "${dry_run}" == false ]]; then
  for container in "${containers[@]}"; do
    if contains "${container}" "${present[@]}"; then pass "container ${container}"; else fail "container ${container} missing"; fi
  done
  if contains "${backlog_queue}" "${queues[@]}"; then pass "queue ${backlog_queue}"; else fail "queue ${backlog_queue} missing"; fi
fi

echo "== Event Grid subscription ${subscription_name}"
query="[provisioningState,filter.subjectBeginsWith,join(',',filter.includedEventTypes),"
query+="join(',',filter.advancedFilters[?key=='data.api'].values[])]"
mapfile -t sub < <(capture az eventgrid system-topic event-subscription show --resource-group "${resource_group}" \
  --system-topic-name "${system_topic}" --name "${subscription_name}" --query "${query}" --output tsv | lines || true)
if [[ "${dry_run}" == false ]]; then
  if [[ "${#sub[@]}" -ne 4 ]]; then
    fail "subscription ${subscription_name} on ${system_topic} not found: run infra/deploy.sh (step 3)"
  else
    equal "subscription state" "${sub[0]}" "Succeeded"
    equal "subject filter" "${sub[1]}" "/blobServices/default/containers/${incoming}/blobs/"
    equal "event types" "${sub[2]}" "Microsoft.Storage.BlobCreated"
    IFS=',' read -r -a apis <<<"${sub[3]}"
    mapfile -t apis_sorted < <(printf '%s\n' "${apis[@]}" | sort)
    equal "API filter (sorted)" "${apis_sorted[*]}" "CopyBlob PutBlob PutBlockList" \
      "other write APIs would let the app's own writes trigger it"
  fi
fi

echo "== function settings (catalogue: functions/settings.py)"
python="${root}/.venv/bin/python"
[[ -x "${python}" ]] || python="python3"
# name<TAB>required, for each setting the code reads and each part of the identity-based storage connection.
catalogue=""
[[ "${dry_run}" == true ]] || catalogue="$(cd "${root}" && "${python}" -c '
from functions.settings import SETTINGS, STORAGE_CONNECTION
for s in SETTINGS:
    print(s.name, "required" if s.required else "optional", sep="\t")
for part in ("blobServiceUri", "queueServiceUri", "credential", "clientId"):
    print(f"{STORAGE_CONNECTION}__{part}", "required", sep="\t")
' 2>&1)" || die "cannot read the settings catalogue with ${python}: ${catalogue} (run 'make setup' first)"
mapfile -t names < <(capture az functionapp config appsettings list --resource-group "${resource_group}" \
  --name "${function_app}" --query "[].name" --output tsv | lines || true)
mapfile -t empty < <(capture az functionapp config appsettings list --resource-group "${resource_group}" \
  --name "${function_app}" --query "[?value==null || value==''].name" --output tsv | lines || true)
if [[ "${dry_run}" == false ]]; then
  # With CVOPS_MODEL (an exported model run in-process) the Prediction API's settings are not needed.
  in_process=false
  contains CVOPS_MODEL "${names[@]}" && ! contains CVOPS_MODEL "${empty[@]}" && in_process=true
  while IFS=$'\t' read -r name required; do
    if ! contains "${name}" "${names[@]}"; then
      fail "setting ${name} not set"
    elif [[ "${in_process}" == true && "${name}" =~ ^VISION_(PREDICTION_ENDPOINT|PROJECT_ID|PUBLISH_NAME)$ ]]; then
      pass "setting ${name} (not needed: CVOPS_MODEL classifies in-process)"
    elif [[ "${required}" == required ]] && contains "${name}" "${empty[@]}"; then
      fail "setting ${name} is required and empty (VISION_PROJECT_ID/VISION_PUBLISH_NAME: set projectId/publishName and deploy again)"
    else
      pass "setting ${name}"
    fi
  done <<<"${catalogue}"
fi

echo "== function ${function_name}"
mapfile -t functions < <(capture az functionapp function list --resource-group "${resource_group}" \
  --name "${function_app}" --query "[].name" --output tsv | lines || true)
if [[ "${dry_run}" == false ]]; then
  if contains "${function_app}/${function_name}" "${functions[@]}"; then
    pass "function ${function_name} loaded"
  else
    fail "function ${function_name} not among [${functions[*]}]: was the code deployed (deploy.sh step 2)?"
  fi
fi

if [[ "${dry_run}" == true ]]; then
  echo "verify.sh: dry run, nothing checked" >&2
  exit 0
fi
echo "verify.sh: ${passed} checks passed, ${failed} checks failed"
[[ "${failed}" -eq 0 ]]
