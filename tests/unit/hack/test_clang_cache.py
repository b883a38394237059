"""hack/fleet/images/clang-cache (clang_cache.py): the agents' clang remembers objects by preprocessed input and
flags, and otherwise is the real clang. A stand-in "real clang" records each call."""
import os
import subprocess
import sys
import time

import pytest

from hack.fleet import pods

WRAPPER = os.path.join(os.path.dirname(pods.__file__), "images", "clang-cache")

FAKE_CLANG = r'''#!%s
import os, sys
args = sys.argv[1:]
with open(os.environ["CALLS"], "a") as f:
    f.write(" ".join(args) + "\n")
if "--version" in args:
    print("fake clang 19"); sys.exit(0)
src = [a for a in args if a.endswith(".c")][0]
text = open(src).read()
if "-E" in args:  # the preprocessed source: the file and the -D flags
    sys.stdout.write("# 1 %%s\n%%s %%s\n" %% (src, text, " ".join(a for a in args if a.startswith("-D"))))
    sys.exit(0)
if "error" in text:
    sys.stderr.write("t.c:1: error\n"); sys.exit(1)
sys.stdout.write("OBJ[%%s|%%s]" %% (text.strip(), " ".join(a for a in args if a.startswith("-D"))))
''' % sys.executable


@pytest.fixture
def clang(tmp_path):
    real = tmp_path / "clang"
    real.write_text(FAKE_CLANG)
    real.chmod(0o755)
    calls = tmp_path / "calls"
    cache = tmp_path / "cache"
    cache.mkdir()
    src = tmp_path / "t.c"
    src.write_text("int f;\n")
    env = dict(os.environ, MESHOPS_CLANG=str(real), MESHOPS_CLANG_CACHE=str(cache), CALLS=str(calls))

    def run(*args, **kw):
        calls.write_text("")
        proc = subprocess.run([WRAPPER] + [a.replace("SRC", str(src)) for a in args], env=dict(env, **kw),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
        compiled = [ln for ln in calls.read_text().splitlines() if " -c " in " %s " % ln and "-E" not in ln.split()]
        return proc, len(compiled)
    run.src, run.cache = src, cache
    return run


def cached(top):
    """Paths of the objects kept under ``top``."""
    return [os.path.join(d, f) for d, _dirs, files in os.walk(str(top)) for f in files]


COMPILE = ("-O2", "--target=bpf", "-DX=1", "-c", "SRC", "-o", "-")


def test_the_same_input_compiles_once_and_gives_the_same_object(clang):
    first, compiled = clang(*COMPILE)
    assert first.returncode == 0 and compiled == 1 and first.stdout.startswith(b"OBJ[int f;")
    again, compiled = clang(*COMPILE)
    assert again.returncode == 0 and compiled == 0 and again.stdout == first.stdout


@pytest.mark.parametrize("change", ["source", "flag"])
def test_a_changed_source_or_flag_compiles_again(clang, change):
    first = clang(*COMPILE)[0]
    args = COMPILE
    if change == "source":
        clang.src.write_text("int g;\n")
    else:
        args = tuple("-DX=2" if a == "-DX=1" else a for a in COMPILE)
    second, compiled = clang(*args)
    assert compiled == 1 and second.stdout != first.stdout


def test_a_failed_compile_is_reported_and_not_remembered(clang):
    clang.src.write_text("error\n")
    proc, compiled = clang(*COMPILE)
    assert proc.returncode == 1 and b"error" in proc.stderr and compiled == 1
    proc, compiled = clang(*COMPILE)
    assert proc.returncode == 1 and compiled == 1
    assert not cached(clang.cache)


@pytest.mark.parametrize("args", [("--version",), ("-O2", "-E", "-c", "SRC", "-o", "-"), ("-O2", "-c", "SRC", "-o", "x.o")])
def test_anything_but_an_object_to_stdout_is_the_real_clang(clang, args):
    for attempt in range(2):
        proc = clang(*args)[0]
        assert proc.returncode == 0, attempt
    assert not cached(clang.cache)


def test_without_a_cache_directory_every_call_compiles(clang):
    for attempt in range(2):
        proc, compiled = clang(*COMPILE, MESHOPS_CLANG_CACHE="/nonexistent")
        assert proc.returncode == 0 and compiled == 1, attempt


def test_trim_keeps_the_objects_used_last(tmp_path, monkeypatch):
    monkeypatch.setattr(pods.build, "CACHE", str(tmp_path))
    top = pods.clang_cache_dir()
    now = time.time()
    for i in range(5):
        p = os.path.join(top, "%02d" % i, "k%d.o" % i)
        os.makedirs(os.path.dirname(p))
        open(p, "w").close()
        os.utime(p, (now - 100 * i, now - 100 * i))  # k0 used last
    assert pods.trim_clang_cache(keep=2) == 3
    left = sorted(os.path.basename(p) for p in cached(top))
    assert left == ["k0.o", "k1.o"]
