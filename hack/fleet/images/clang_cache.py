"""`clang` in the fleet's Cilium agent image: the real clang, with its objects remembered.

Cilium's agent compiles its BPF programs with `clang ... -c <source> -o -` each time it starts
and each time its datapath configuration changes (pkg/datapath/loader/compile.go), 20 to 30
CPU-seconds per program. The fleet installs Cilium into the same clusters again and again, so
the same sources with the same headers and flags are compiled many times. ccache cannot help: it
does not cache output written to standard output. This does what ccache's preprocessor mode does:
the key is the hash of the arguments and of clang's own preprocessed output (`-E`, every header
the agent generated included), and the value is the object clang produced for them. A changed
header, flag, source or clang gives another key, hence a real compile.

MESHOPS_CLANG: the real clang (the image sets it). MESHOPS_CLANG_CACHE: the directory of
objects (bound read-write into the container); without it, or for anything but an object
written to standard output, the real clang runs as it is.
"""
import hashlib
import os
import subprocess
import sys
import tempfile

REAL = os.environ.get("MESHOPS_CLANG", "/usr/bin/clang")
CACHE = os.environ.get("MESHOPS_CLANG_CACHE", "")


def run_real(args):
    os.execv(REAL, [REAL] + args)


def cacheable(args):
    """Only `-c ... -o -`: one object to standard output (not -E, not a version probe)."""
    pairs = list(zip(args, args[1:]))
    return "-c" in args and ("-o", "-") in pairs and "-E" not in args and os.path.isdir(CACHE)


def key(args):
    """sha256 of clang's version, the arguments and the preprocessed source, or None."""
    pre = []
    skip = False
    for a in args:
        if skip:
            skip = False
            continue
        if a == "-o":
            skip = True
            continue
        if a in ("-c", "-g"):
            continue
        pre.append(a)
    proc = subprocess.run([REAL, "-E", "-o", "-"] + pre, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    if proc.returncode != 0:
        return None  # the real compile reports the error
    h = hashlib.sha256()
    h.update(os.path.realpath(REAL).encode() + b"\0" + str(os.stat(REAL).st_size).encode() + b"\0")
    h.update("\0".join(args).encode() + b"\0\0")
    h.update(proc.stdout)
    return h.hexdigest()


def main():
    args = sys.argv[1:]
    if not cacheable(args):
        run_real(args)
    k = key(args)
    if k is None:
        run_real(args)
    path = os.path.join(CACHE, k[:2], k + ".o")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        data = None
    if data:
        os.utime(path)  # recently used: kept by the fleet's trim
        sys.stdout.buffer.write(data)
        return 0
    proc = subprocess.run([REAL] + args, stdout=subprocess.PIPE)
    if proc.returncode == 0 and proc.stdout:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(proc.stdout)
        os.replace(tmp, path)
    sys.stdout.buffer.write(proc.stdout)
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
