# shellcheck shell=bash
# Helpers shared by deploy.sh and verify.sh (sourced, not run): print each Azure CLI command the way a shell reads it
# back, and run it unless this is a dry run. Why print them: an operator sees exactly what was done to the
# subscription, and `--dry-run` doubles as documentation of the steps.
#
# The caller sets: script (its name, for messages) and dry_run (true|false).

# One word as the shell would read it back: bare when safe, in double quotes when it holds single quotes only
# (JMESPath queries), else in single quotes. Dry-run placeholders (<name>) stay readable.
quote() {
  local safe='^[A-Za-z0-9_./:=@,+%-]+$' placeholder='^[A-Za-z0-9_./:=@,+%-]*<[A-Za-z]+>$'
  if [[ "$1" =~ ${safe} || "$1" =~ ${placeholder} ]]; then
    printf '%s' "$1"
  elif [[ "$1" != *[\"\$\`\\]* ]]; then
    printf '"%s"' "$1"
  else
    printf "'%s'" "${1//\'/\'\\\'\'}"
  fi
}

# Print a command on stderr, prefixed with '+'.
show() {
  local word
  printf '+' >&2
  for word in "$@"; do
    printf ' %s' "$(quote "${word}")" >&2
  done
  printf '\n' >&2
}

# Print a command, then run it unless this is a dry run.
run() {
  show "$@"
  if [[ "${dry_run:-false}" == false ]]; then
    "$@"
  fi
}

die() {
  echo "${script:-infra}: $*" >&2
  exit 2
}

# need_value OPTION [VALUE]: stop unless the option has a value (a next word that is not itself an option).
need_value() {
  [[ $# -ge 2 && -n "$2" && "$2" != -* ]] || die "$1 needs a value"
}

# Stop with a clear message when az is missing or not logged in (a dry run needs neither).
require_az() {
  [[ "${dry_run:-false}" == true ]] && return 0
  command -v az >/dev/null 2>&1 || die "the Azure CLI (az) is not on PATH. Install it (pip install azure-cli, or \
https://learn.microsoft.com/cli/azure/install-azure-cli), run 'az login', and try again. \
'infra/${script:-deploy.sh} --dry-run ...' prints the commands without it."
  az account show --query id --output tsv >/dev/null 2>&1 || die "not logged in to Azure: run 'az login' \
(and 'az account set --subscription ID'), then try again."
}
