# shellcheck shell=bash
# Sourced by scripts/checkov.sh and scripts/ci-schemas.sh: a CI linter in a virtual environment of its own, installed
# with hashes from its lock (locks/README.md) and rebuilt only when that lock changes. Its own environment, because a
# linter is no runtime dependency of cvops and some (checkov) would change the project's pins.
#
# tool_venv CALLER VENV LOCK WHAT: make sure VENV holds LOCK's packages; messages name CALLER and WHAT. Exits 2 when
# Python is missing or the install fails (the last lines of pip's log on stderr). PYTHON picks the interpreter.
tool_venv() {
  local caller="$1" venv="$2" lock="$3" what="$4"
  local stamp python log
  stamp="${venv}/.installed-$(sha256sum "${lock}" | cut -c1-16)"
  python="${PYTHON:-python3.11}"
  if [[ -f "${stamp}" ]]; then
    return 0
  fi
  if ! command -v "${python}" >/dev/null 2>&1; then
    echo "${caller}: ${python} not found; install Python 3.11 or set PYTHON=/path/to/python3" >&2
    exit 2
  fi
  echo "${caller}: installing ${what} from ${lock} into ${venv}" >&2
  rm -rf "${venv}"
  "${python}" -m venv "${venv}"
  log="${venv}/pip-install.log"
  if ! "${venv}/bin/python" -m pip install --disable-pip-version-check --require-hashes --no-deps -r "${lock}" \
      >"${log}" 2>&1; then
    tail -n 20 "${log}" >&2
    echo "${caller}: installing ${what} failed (full log: ${log})" >&2
    exit 2
  fi
  touch "${stamp}"
}
