#!/usr/bin/env bash
# Lint the collection with a virtual environment's tools.
#
#   bash hack/lint.sh VENV
#
# 1. ansible-lint with the production profile (.ansible-lint: offline, so it never asks
#    Galaxy for anything; virtual environments, fleet state, hack/ and build output are
#    excluded);
# 2. antsibull-changelog: the fragments in changelogs/fragments and changelogs/changelog.yaml;
# 3. shellcheck on the developer scripts (hack/*.sh, .ci/run, the fleet images' sh programs), which are not collection
#    content and so are outside ansible-test's sanity run. shellcheck (a Debian package) is
#    installed when missing.
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

# Playbooks and roles call the collection's own modules by their full names: make this
# checkout resolvable as meshops.cilium (offline: true keeps ansible-lint from installing
# it) through a link in a scratch collections path.
colls="$HOME/.cache/meshops/lint/$(printf '%s' "$root" | sha256sum | cut -c1-12)"
mkdir -p "$colls/ansible_collections/meshops"
ln -sfn "$root" "$colls/ansible_collections/meshops/cilium"
export ANSIBLE_COLLECTIONS_PATH="$colls${ANSIBLE_COLLECTIONS_PATH:+:$ANSIBLE_COLLECTIONS_PATH}"
# ansible-lint also looks in ~/.ansible/collections: an installed copy of meshops.cilium there (an older
# release, say) would be read instead of this checkout (a new module "couldn't resolve"). ansible-lint
# runs with a scratch HOME of its own (kept, for its caches), so only this checkout is meshops.cilium.
lint_home="$colls/home"
mkdir -p "$lint_home"
installed="$HOME/.ansible/collections/ansible_collections/meshops/cilium"
if [[ -e "$installed" && "$(readlink -f "$installed")" != "$root" ]]; then
    say "note: another copy of meshops.cilium is installed at $installed; ansible-lint does not read it" \
        "(it runs with HOME=$lint_home)"
fi

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

color=(); [[ -t 1 ]] || color=(--nocolor)
step "ansible-lint (profile production)" env HOME="$lint_home" ansible-lint "${color[@]}"
step "antsibull-changelog lint (fragments)" antsibull-changelog lint
step "antsibull-changelog lint-changelog-yaml" antsibull-changelog lint-changelog-yaml changelogs/changelog.yaml

if ! command -v shellcheck >/dev/null 2>&1; then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        say "installing shellcheck (Debian package)"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends shellcheck >&2
    else
        say "shellcheck is missing and cannot be installed here (need root and apt-get)"
        exit 1
    fi
fi
# the shell scripts: hack/*.sh, .ci/run, and the fleet images' programs that start with #!/bin/sh
# (the images' Python, clang_cache.py, is not shell: tests/unit/hack/test_clang_cache.py runs it)
mapfile -t scripts < <(ls hack/*.sh .ci/run 2>/dev/null; grep -l '^#!/bin/sh' hack/fleet/images/* 2>/dev/null)
step "shellcheck ${scripts[*]}" shellcheck "${scripts[@]}"
exit $status
