#!/usr/bin/env bash
# Create or refresh a virtual environment with the collection's test requirements.
#
#   bash hack/venv.sh VENV [PYTHON] [ANSIBLE_CORE_SPEC]
#
# VENV               path of the environment (relative to the current directory).
# PYTHON             interpreter: a version ("3.13"), a command or a path. Default: the
#                    "meshops-venv" line of requirements-test.txt whose name matches
#                    VENV's base name, else the ".venv" line.
# ANSIBLE_CORE_SPEC  pip specifier for ansible-core, e.g. "ansible-core~=2.21.0" or
#                    "~=2.21.0" or "2.21" (meaning that release series). Default: from the
#                    same "meshops-venv" line.
#
# Idempotent: a stamp file inside VENV holds a hash of the requirement files, this
# script, the interpreter's version and the ansible-core specifier; when it matches,
# nothing is installed and the script returns at once. Downloaded files are kept in
# ~/.cache/meshops/wheelhouse (see below); pip's default cache is used as well.
set -euo pipefail

usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
[[ $# -ge 1 && $# -le 3 ]] || usage

say() { printf '[venv] %s\n' "$*" >&2; }
die() { printf '[venv] ERROR: %s\n' "$*" >&2; exit 1; }

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv_arg="$1"
case "$venv_arg" in
    /*) venv="$venv_arg" ;;
    *) venv="$PWD/$venv_arg" ;;
esac
venv_name="$(basename "$venv")"
req_test="$root/requirements-test.txt"
req_run="$root/requirements.txt"
[[ -f "$req_test" && -f "$req_run" ]] || die "requirements files missing under $root"

# --- defaults from requirements-test.txt --------------------------------------------
# Lines look like:  # meshops-venv: .venv-oldest python=3.11 core=2.18
matrix_field() { # name field -> value or empty
    awk -v n="$1" -v f="$2" '
        $1 == "#" && $2 == "meshops-venv:" && $3 == n {
            for (i = 4; i <= NF; i++) { split($i, kv, "="); if (kv[1] == f) print kv[2] }
        }' "$req_test"
}
profile="$venv_name"
[[ -n "$(matrix_field "$profile" python)" ]] || profile=".venv"

python_arg="${2:-$(matrix_field "$profile" python)}"
core_arg="${3:-$(matrix_field "$profile" core)}"
[[ -n "$python_arg" && -n "$core_arg" ]] || die "no meshops-venv defaults in $req_test"

# --- ansible-core specifier --------------------------------------------------------
case "$core_arg" in
    ansible-core*) core_spec="$core_arg" ;;
    [0-9]*.[0-9]*)
        if [[ "$core_arg" =~ ^[0-9]+\.[0-9]+$ ]]; then
            core_spec="ansible-core~=${core_arg}.0"   # one release series: 2.21 -> >=2.21.0,<2.22
        else
            core_spec="ansible-core==${core_arg}"
        fi ;;
    *) core_spec="ansible-core${core_arg}" ;;
esac

# --- interpreter ---------------------------------------------------------------------
find_python() { # version-or-command -> absolute path
    local want="$1" c
    if [[ "$want" == */* ]]; then
        [[ -x "$want" ]] && { echo "$want"; return; }
        return 1
    fi
    if [[ "$want" =~ ^[0-9]+\.[0-9]+$ ]]; then
        # pyenv installs first (highest patch release), then PATH.
        while IFS= read -r c; do
            [[ -x "$c" ]] && { echo "$c"; return; }
        done < <(printf '%s\n' "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$want".*/bin/python"$want" \
                                /root/.pyenv/versions/"$want".*/bin/python"$want" | sort -Vr)
        for c in "python$want" "/usr/bin/python$want" "/usr/local/bin/python$want"; do
            command -v "$c" >/dev/null 2>&1 || continue
            # pyenv shims exist for versions that are not selected; make sure it runs.
            "$c" -c 'import sys' >/dev/null 2>&1 && { command -v "$c"; return; }
        done
        return 1
    fi
    command -v "$want" 2>/dev/null || return 1
}
python="$(find_python "$python_arg")" || die "no Python interpreter for '$python_arg' (looked in ~/.pyenv/versions and PATH)"
py_version="$("$python" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')"

# --- stamp ----------------------------------------------------------------------------
stamp_file="$venv/.meshops-stamp"
stamp="$({ cat "$req_run" "$req_test" "$0"; echo "python=$py_version"; echo "core=$core_spec"; } \
          | sha256sum | cut -d' ' -f1)"

if [[ -f "$stamp_file" && "$(cat "$stamp_file")" == "$stamp" && -x "$venv/bin/python" ]]; then
    say "$venv_arg up to date (Python $py_version, $core_spec)"
    exit 0
fi

# One builder at a time per environment (make targets may start this twice).
lock_dir="$HOME/.cache/meshops/locks"
mkdir -p "$(dirname "$venv")" "$lock_dir"
exec 9>"$lock_dir/venv-$(printf '%s' "$venv" | sha256sum | cut -c1-16).lock"
flock 9
if [[ -f "$stamp_file" && "$(cat "$stamp_file")" == "$stamp" && -x "$venv/bin/python" ]]; then
    say "$venv_arg up to date (built by a concurrent run)"
    exit 0
fi

start=$SECONDS
if [[ -x "$venv/bin/python" ]]; then
    have="$("$venv/bin/python" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>/dev/null || true)"
    if [[ "$have" != "$py_version" ]]; then
        say "$venv_arg has Python ${have:-?}, want $py_version: recreating"
        rm -rf "$venv"
    fi
fi
if [[ ! -x "$venv/bin/python" ]]; then
    say "creating $venv_arg with $python (Python $py_version)"
    rm -rf "$venv"
    "$python" -m venv "$venv"
fi
rm -f "$stamp_file"

pip=("$venv/bin/python" -m pip --disable-pip-version-check --no-input)
# Files downloaded from the index are kept in a wheelhouse: this machine's index proxy sends
# no caching headers, so pip's own HTTP cache (~/.cache/pip) keeps nothing. A rebuild then
# installs without the network; only when the wheelhouse lacks something (new ranges, first
# run) does pip download into it from the index. --no-compile: byte-code is written on first
# import instead, which more than halves the install time.
wheelhouse="${MESHOPS_WHEELHOUSE:-$HOME/.cache/meshops/wheelhouse}"
mkdir -p "$wheelhouse"
pip_quiet() { # args... -> runs pip, filters noise, returns pip's status
    local rc
    set +e
    "${pip[@]}" "$@" --progress-bar off 2>&1 \
        | grep -v -E '^ *(Requirement already satisfied|Using cached|Downloading|Collecting|Obtaining|Looking in links|Processing|File was already downloaded|Saved )' >&2
    rc=${PIPESTATUS[0]}
    set -e
    return "$rc"
}
install_args=(install --no-compile --upgrade --upgrade-strategy only-if-needed --no-index --find-links "$wheelhouse"
              -r "$req_test" "$core_spec")
say "installing requirements-test.txt + '$core_spec' into $venv_arg from $wheelhouse"
if ! pip_quiet "${install_args[@]}" 2>/dev/null; then
    say "wheelhouse incomplete: downloading from the package index"
    pip_quiet download --dest "$wheelhouse" -r "$req_test" "$core_spec" \
        || die "pip download failed for $venv_arg"
    pip_quiet "${install_args[@]}" || die "pip install failed in $venv_arg"
fi
"${pip[@]}" check >&2 || die "pip check failed in $venv_arg"
"$venv/bin/python" - "$core_spec" <<'PY' || die "ansible-core in $venv_arg does not satisfy the specifier"
import sys
from importlib.metadata import version
from packaging.requirements import Requirement
req = Requirement(sys.argv[1])
have = version("ansible-core")
if not req.specifier.contains(have, prereleases=True):
    sys.exit(f"ansible-core {have} not in {req.specifier}")
print(f"[venv] ansible-core {have}", file=sys.stderr)
PY

echo "$stamp" >"$stamp_file"
say "$venv_arg ready in $((SECONDS - start)) s"
