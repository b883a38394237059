#!/usr/bin/env bash
# Lint the collection with a virtual environment's tools.
#
#   bash hack/lint.sh VENV
#
# 1. ansible-lint with the production profile (.ansible-lint: offline, so it never asks
#    Galaxy for anything; virtual environments, fleet state, hack/ and build output are
#    excluded);
# 2. antsibull-changelog: the fragments in changelogs/fragments and changelogs/changelog.yaml.
# Every step runs even when an earlier one fails; the exit status is non-zero if any failed.
set -euo pipefail

[[ $# -eq 1 ]] || { echo "usage: bash hack/lint.sh VENV" >&2; exit 2; }
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
say() { printf '[lint] %s\n' "$*" >&2; }

bash "$root/hack/venv.sh" "$1"
case "$1" in /*) venv="$1" ;; *) venv="$PWD/$1" ;; esac
cd "$root"
# ansible-lint runs ansible-* commands; let it find the environment's own.
export PATH="$venv/bin:$PATH"

status=0
step() { # name command...
    local name="$1" start=$SECONDS rc
    shift
    say "$name"
    set +e
    "$@"
    rc=$?
    set -e
    if [[ $rc -eq 0 ]]; then
        say "$name: passed in $((SECONDS - start)) s"
    else
        say "$name: FAILED (exit $rc) in $((SECONDS - start)) s"
        status=1
    fi
}

step "ansible-lint (profile production)" ansible-lint
step "antsibull-changelog lint (fragments)" antsibull-changelog lint
step "antsibull-changelog lint-changelog-yaml" antsibull-changelog lint-changelog-yaml changelogs/changelog.yaml
exit $status
