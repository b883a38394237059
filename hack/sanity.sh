#!/usr/bin/env bash
# Run `ansible-test sanity` on the collection with the oldest and the newest supported
# ansible-core, offline-safe and from any checkout path.
#
#   bash hack/sanity.sh [extra ansible-test sanity arguments, e.g. --test pep8]
#
# For every "meshops-venv" line of requirements-test.txt (environment, Python, core):
#  1. make sure the environment exists (hack/venv.sh; instant when up to date);
#  2. copy the collection's files (git's view of the work tree: tracked and untracked but
#     not ignored files, without hack/) into
#     ~/.cache/meshops/sanity/<checkout hash>/core-<core>/ansible_collections/meshops/cilium,
#     since ansible-test only runs from a path ending in ansible_collections/NS/NAME;
#  3. write ansible-test's pip bootstrap script as a local stand-in (ensurepip, then
#     pip install) so that --venv needs no download from outside the package index;
#  4. run `ansible-test sanity --venv --python X.Y`: each sanity test gets its own
#     pinned virtual environment, kept by ansible-test under ~/.ansible/test/venv and
#     filled from ~/.cache/pip.
# The shellcheck program (a Debian package) is installed when missing, so that sanity test
# is not skipped.
#
# pylint, the slowest test (about two thirds of a run), runs with the first environment of
# requirements-test.txt only (the newest ansible-core, whose pinned pylint is the newest and
# strictest); the others run every other test. MESHOPS_SANITY_PYLINT_ALL=1 runs it everywhere;
# extra arguments (e.g. --test pylint) are passed as given to every environment.
#
# Environment: MESHOPS_SANITY_VENVS="..." limits the run to those environments (names as
# in requirements-test.txt); MESHOPS_SANITY_DIR overrides the scratch directory.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

say() { printf '[sanity] %s\n' "$*" >&2; }
die() { printf '[sanity] ERROR: %s\n' "$*" >&2; exit 1; }

# --- shellcheck -------------------------------------------------------------------------
if ! command -v shellcheck >/dev/null 2>&1; then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        say "installing shellcheck (Debian package)"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >&2 || die "apt-get update failed"
        apt-get install -y -qq --no-install-recommends shellcheck >&2 || die "apt-get install shellcheck failed"
    else
        die "shellcheck is missing and cannot be installed here (need root and apt-get): install it"
    fi
fi

# --- environments to test ------------------------------------------------------------------
mapfile -t matrix < <(awk '$1 == "#" && $2 == "meshops-venv:" { print $3 }' requirements-test.txt)
[[ ${#matrix[@]} -gt 0 ]] || die "no meshops-venv lines in requirements-test.txt"
newest="${matrix[0]}"  # the first line: the newest ansible-core (pylint runs there, see above)
if [[ -n "${MESHOPS_SANITY_VENVS:-}" ]]; then
    read -r -a matrix <<<"$MESHOPS_SANITY_VENVS"
fi

scratch="${MESHOPS_SANITY_DIR:-$HOME/.cache/meshops/sanity/$(printf '%s' "$root" | sha256sum | cut -c1-12)}"

# Files of the collection, as git sees the work tree, minus the developer tooling.
list_files() {
    if git -C "$root" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        git -C "$root" ls-files -z --cached --others --exclude-standard
    else
        find . -type f -not -path './.git/*' -printf '%P\0'
    fi
}

sync_tree() { # destination
    local dest="$1"
    mkdir -p "$dest"
    # Start from an empty tree each time (keep ansible-test's output directory).
    find "$dest" -mindepth 1 -maxdepth 1 -not -name tests -exec rm -rf {} +
    if [[ -d "$dest/tests" ]]; then
        find "$dest/tests" -mindepth 1 -maxdepth 1 -not -name output -exec rm -rf {} +
    fi
    list_files | python3 -c '
import os, shutil, sys
dest = sys.argv[1]
skip = ("hack/", ".git/", ".fleet/", "build/", "tests/output/", "molecule/.cache/")
n = 0
for path in sys.stdin.buffer.read().decode().split("\0"):
    if not path or path.startswith(skip) or path.startswith(".venv") or not os.path.isfile(path):
        continue
    target = os.path.join(dest, path)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    shutil.copy2(path, target)
    n += 1
print(n)
' "$dest"
}

# ansible-test bootstraps pip into each new virtual environment with a get-pip script that it
# downloads from a host this machine cannot reach; a script already in its cache is used
# instead. Ours installs the same pip version from the package index.
write_get_pip() { # venv python
    local py="$1" version path
    version="$("$py" -c '
import sys
from types import SimpleNamespace
from ansible_test._internal.python_requirements import get_venv_packages
print(get_venv_packages(SimpleNamespace(version="%d.%d" % sys.version_info[:2]))["pip"])')"
    path="$HOME/.ansible/test/cache/get_pip_${version//./_}.py"
    if [[ -f "$path" ]] && ! grep -q 'meshops stand-in' "$path"; then
        say "using existing $path"
        return
    fi
    mkdir -p "$(dirname "$path")"
    cat >"$path" <<'PY'
"""meshops stand-in for ansible-test's get-pip bootstrap (written by hack/sanity.sh).

Called as `python get_pip_X_Y.py [pip options] pip==X.Y --no-setuptools --no-wheel` inside a
fresh virtual environment made without pip: put pip in with ensurepip, then let pip
install the requested version from the package index.
"""
import subprocess
import sys

args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade", "--default-pip"],
                      stdout=subprocess.DEVNULL)
subprocess.check_call([sys.executable, "-m", "pip", "install", "--progress-bar", "off"] + args)
PY
}

declare -A results times
status=0
for venv_name in "${matrix[@]}"; do
    extra=()
    if [[ $# -eq 0 && "$venv_name" != "$newest" && -z "${MESHOPS_SANITY_PYLINT_ALL:-}" ]]; then
        extra=(--skip-test pylint)
        say "$venv_name: pylint runs with $newest only"
    fi
    start=$SECONDS
    bash hack/venv.sh "$venv_name"
    venv="$root/$venv_name"
    py="$venv/bin/python"
    pyver="$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
    core="$("$py" -c 'from ansible.release import __version__; print(__version__)')"
    tree="$scratch/${venv_name#.}/ansible_collections/meshops/cilium"
    write_get_pip "$py"
    n="$(sync_tree "$tree")"
    say "ansible-core $core, Python $pyver: $n files in $tree"
    set +e
    (
        cd "$tree"
        export PATH="$venv/bin:$PATH"
        ansible-test sanity --venv --python "$pyver" --color no "${extra[@]}" "$@"
    )
    rc=$?
    set -e
    times[$venv_name]=$((SECONDS - start))
    if [[ $rc -eq 0 ]]; then
        results[$venv_name]="passed"
    else
        results[$venv_name]="FAILED (exit $rc; results in $tree/tests/output)"
        status=1
    fi
    say "ansible-core $core: ${results[$venv_name]} in ${times[$venv_name]} s"
done

say "summary:"
for venv_name in "${matrix[@]}"; do
    say "  $venv_name: ${results[$venv_name]} (${times[$venv_name]} s)"
done
exit $status
