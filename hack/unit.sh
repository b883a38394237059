#!/usr/bin/env bash
# Run the unit tests (tests/unit, pytest) with one or more virtual environments.
#
#   bash hack/unit.sh VENV [VENV...] [-- extra pytest arguments]
#
# e.g. `bash hack/unit.sh .venv .venv-oldest` runs them on the newest and the oldest
# supported ansible-core. Each VENV is first brought up to date with hack/venv.sh (instant
# when it already is). tests/unit/conftest.py makes the checkout importable as
# ansible_collections.meshops.cilium, so this runs from any checkout path.
# pytest's "no tests collected" (exit 5) counts as a failure: a run that tested nothing
# must not pass.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
say() { printf '[unit] %s\n' "$*" >&2; }

venvs=()
while [[ $# -gt 0 && "$1" != "--" ]]; do venvs+=("$1"); shift; done
[[ $# -gt 0 ]] && shift   # drop "--"
[[ ${#venvs[@]} -gt 0 ]] || { echo "usage: bash hack/unit.sh VENV [VENV...] [-- pytest args]" >&2; exit 2; }

# Resolve environment paths against the caller's directory, then work from the root.
abs=()
for v in "${venvs[@]}"; do
    bash "$root/hack/venv.sh" "$v"
    case "$v" in /*) abs+=("$v") ;; *) abs+=("$PWD/$v") ;; esac
done
cd "$root"

status=0
for i in "${!abs[@]}"; do
    venv="${abs[$i]}"
    core="$("$venv/bin/python" -c 'from ansible.release import __version__; print(__version__)')"
    pyver="$("$venv/bin/python" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')"
    say "${venvs[$i]}: ansible-core $core, Python $pyver"
    start=$SECONDS
    set +e
    "$venv/bin/python" -m pytest -p no:cacheprovider tests/unit "$@"
    rc=$?
    set -e
    case $rc in
        0) say "${venvs[$i]}: passed in $((SECONDS - start)) s" ;;
        5) say "${venvs[$i]}: FAILED: pytest collected no tests under tests/unit"; status=1 ;;
        *) say "${venvs[$i]}: FAILED (pytest exit $rc) in $((SECONDS - start)) s"; status=1 ;;
    esac
done
exit $status
