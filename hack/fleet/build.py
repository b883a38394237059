"""Build (once per machine, cached by version) the programs the fleet runs.

Everything comes from pinned Go modules:
  * hack/gotools/kubernetes: kube-apiserver, kube-controller-manager, kube-scheduler, kubectl
    (a helper module: k8s.io/kubernetes needs `replace` lines for its staging modules);
  * hack/gotools/etcd: etcd's own server entry point;
  * hack/gotools/charts: our tool that writes the real Cilium chart archives embedded in
    github.com/cilium/charts;
  * hack/gotools/cilium: Cilium's own clustermesh-apiserver (subcommands clustermesh,
    kvstoremesh, etcdinit, clustermesh-dbg, kvstoremesh-dbg), cilium-dbg, the agent
    (`daemon`, installed as cilium-agent), cilium-health-responder and cilium-cni, from github.com/cilium/cilium (see
    that go.mod for its three extra lines); the same build copies Cilium's real chart source,
    CRDs, the BPF sources the agent compiles and the images' own files out of that module;
  * helm (Helm 3), helm4 (Helm 4, installed under that name next to helm) and kwok with
    `go install module@version` (no replace lines in their go.mod);
  * on demand only (build_cilium_cli, never build_all): hack/gotools/cilium-cli, the upstream
    cilium-cli, the benchmark's reference peer (benchmarks/peer.py).
Results live under ~/.cache/meshops/bin/<tool>-<version>-<hash of the pins>/.
"""
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GOTOOLS = os.path.join(REPO, "hack", "gotools")
CACHE = os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "meshops")

HELM_VERSION = "v3.20.2"
# Helm 4, installed as helm4 next to helm: the integration suite converges with each major
# (tests/integration/test_helm_majors.py). The newest v4.3 the Go module proxy serves.
HELM4_VERSION = "v4.3.2"
KWOK_VERSION = "v0.8.0"
# The newest patch release of each supported minor that the pinned charts module holds; 1.20
# (the newest, so the local inventory's default) comes from the Cilium module itself
# (chart_versions()).
CHART_VERSIONS = ("1.17.14", "1.18.8", "1.19.2")


# helm4: 793 s wall (7 min user CPU) with another fleet's tests on the same 2 cores, the Go build cache
# warm from the other builds (Helm 4 needs client-go v0.37, which none of them uses)
COLD_ESTIMATES = {"kubernetes": "15-30 min", "cilium": "15-25 min", "cilium-cli": "20-25 min", "helm4": "5-13 min"}

# Modules whose pinned versions are not in the public checksum database: their hashes are
# pinned in the helper modules' go.sum instead (the cilium-cli ones were checked against the
# go.sum of the Cilium module version it builds from: every line it shares is identical).
GONOSUMDB = "github.com/cilium/charts"
GONOSUMDB_CILIUM_CLI = ",".join([GONOSUMDB, "github.com/cilium/gobgp", "github.com/cilium/proxy",
                                 "sigs.k8s.io/network-policy-api"])


def log(msg):
    print("[fleet] " + msg, flush=True)


def _gomod_version(module_dir, module):
    with open(os.path.join(GOTOOLS, module_dir, "go.mod")) as f:
        text = f.read()
    m = re.search(r"^\s*(?:require\s+)?" + re.escape(module) + r"\s+(v\S+)", text, re.M)
    if not m:
        raise SystemExit("cannot find %s in hack/gotools/%s/go.mod" % (module, module_dir))
    return m.group(1)


def _pin_hash(module_dir, extra=""):
    h = hashlib.sha256(extra.encode())
    if module_dir:
        for name in ("go.mod", "go.sum", "main.go", "tools.go"):
            path = os.path.join(GOTOOLS, module_dir, name)
            if os.path.exists(path):
                with open(path, "rb") as f:
                    h.update(f.read())
        # local modules the helper replaces into its build (hack/gotools/cilium/mcsapi-controllers)
        root = os.path.join(GOTOOLS, module_dir)
        for sub in sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d))):
            for dirpath, _, files in sorted(os.walk(os.path.join(root, sub))):
                for name in sorted(files):
                    with open(os.path.join(dirpath, name), "rb") as f:
                        h.update(name.encode() + b"\0" + f.read())
    return h.hexdigest()[:10]


def kubernetes_version():
    return _gomod_version("kubernetes", "k8s.io/kubernetes")


def cilium_version():
    return _gomod_version("cilium", "github.com/cilium/cilium")


def tools():
    """Describe every build: name -> dict(version, dir, binaries, command)."""
    k8s = kubernetes_version()
    major, minor = k8s.lstrip("v").split(".")[:2]
    pkg = "k8s.io/component-base/version"
    k8s_ldflags = " ".join([
        "-s -w",
        "-X %s.gitVersion=%s" % (pkg, k8s),
        "-X %s.gitMajor=%s" % (pkg, major),
        "-X %s.gitMinor=%s" % (pkg, minor),
        "-X %s.gitTreeState=clean" % pkg,
        "-X %s.buildDate=1970-01-01T00:00:00Z" % pkg,
        "-X k8s.io/client-go/pkg/version.gitVersion=%s" % k8s,
    ])
    etcd = _gomod_version("etcd", "go.etcd.io/etcd/server/v3")
    charts = _gomod_version("charts", "github.com/cilium/charts")
    cmds = ["kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl"]
    cilium_cmds = ["clustermesh-apiserver", "cilium-dbg", "daemon", "plugins/cilium-cni",
                   "cilium-health/responder"]
    return {
        "kubernetes": dict(
            # agnhost (test/images/agnhost): the program of Kubernetes' e2e test image, which the
            # fleet's real test workloads run (netexec serves the traffic check)
            version=k8s, moddir="kubernetes", binaries=cmds + ["agnhost"],
            argv=["go", "build", "-trimpath", "-ldflags", k8s_ldflags, "-o", "{out}/"]
            + ["k8s.io/kubernetes/cmd/" + c for c in cmds] + ["k8s.io/kubernetes/test/images/agnhost"],
        ),
        "etcd": dict(
            version=etcd, moddir="etcd", binaries=["etcd"],
            argv=["go", "build", "-trimpath", "-ldflags", "-s -w", "-o", "{out}/etcd", "."],
        ),
        "cilium-charts": dict(
            version=charts, moddir="charts", binaries=["cilium-charts"],
            argv=["go", "build", "-trimpath", "-ldflags", "-s -w", "-o", "{out}/cilium-charts", "."],
        ),
        "helm": dict(
            version=HELM_VERSION, moddir=None, binaries=["helm"],
            argv=["go", "install", "-trimpath", "-ldflags",
                  "-s -w -X helm.sh/helm/v3/internal/version.version=" + HELM_VERSION,
                  "helm.sh/helm/v3/cmd/helm@" + HELM_VERSION],
        ),
        "helm4": dict(
            # go install names the program helm; it goes next to Helm 3's as helm4. Helm 4 keeps
            # its version in helm.sh/helm/v4/internal/version (its Makefile's ldflag); without it
            # `helm4 version` says "v4.3" and the modules could not tell the patch release
            version=HELM4_VERSION, moddir=None, binaries=["helm4"], rename={"helm": "helm4"},
            argv=["go", "install", "-trimpath", "-ldflags",
                  "-s -w -X helm.sh/helm/v4/internal/version.version=" + HELM4_VERSION,
                  "helm.sh/helm/v4/cmd/helm@" + HELM4_VERSION],
        ),
        "kwok": dict(
            version=KWOK_VERSION, moddir=None, binaries=["kwok"],
            argv=["go", "install", "-trimpath", "-ldflags", "-s -w",
                  "sigs.k8s.io/kwok/cmd/kwok@" + KWOK_VERSION],
        ),
        "cilium": dict(
            version=cilium_version(), moddir="cilium",
            binaries=["clustermesh-apiserver", "cilium-dbg", "cilium-agent", "cilium-cni",
                      "cilium-health-responder"],
            # the version Cilium's Makefile stamps (`cilium-dbg status`: "Cilium: Ok 1.20.2 ...");
            # the revision field names the module version, there being no git checkout
            argv=["go", "build", "-trimpath", "-ldflags",
                  "-s -w -X 'github.com/cilium/cilium/pkg/version.ciliumVersion=%s module-%s "
                  "1970-01-01T00:00:00+00:00'" % (cilium_version().lstrip("v"), cilium_version()),
                  "-o", "{out}/"]
            + ["github.com/cilium/cilium/" + c for c in cilium_cmds],
            # go build names a program after its package directory; the images install the
            # agent as cilium-agent
            rename={"daemon": "cilium-agent", "responder": "cilium-health-responder"},
            after=copy_cilium_files,
        ),
    }


def tool_dir(name, spec):
    return os.path.join(CACHE, "bin", "%s-%s-%s" % (name, spec["version"],
                                                     _pin_hash(spec["moddir"], " ".join(spec["argv"]))))


def _run_with_progress(label, argv, cwd, env):
    start = time.time()
    done = threading.Event()

    def ticker():
        while not done.wait(30):
            log("  %s: still building (%ds)" % (label, time.time() - start))

    t = threading.Thread(target=ticker, daemon=True)
    t.start()
    proc = subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True)
    done.set()
    if proc.returncode != 0:
        sys.stdout.write(proc.stdout[-6000:])
        raise SystemExit("build of %s failed (exit %d): %s" % (label, proc.returncode, " ".join(argv)))
    return time.time() - start


def _go_env(nosumdb):
    return dict(os.environ, CGO_ENABLED="0", GONOSUMDB=nosumdb, GOFLAGS="-buildvcs=false")


def _build_one(name, spec, env):
    """Build one tool unless its cache directory is complete; return (directory, seconds)."""
    out = tool_dir(name, spec)
    stamp = os.path.join(out, ".complete")
    if os.path.exists(stamp):
        return out, 0.0
    log("building %s %s (cold on 2 cores: %s)" % (name, spec["version"], COLD_ESTIMATES.get(name, "1-5 min")))
    os.makedirs(out, exist_ok=True)
    argv = [a.replace("{out}", out) for a in spec["argv"]]
    if spec["moddir"]:
        cwd = os.path.join(GOTOOLS, spec["moddir"])
        benv = env
    else:
        cwd = REPO
        benv = dict(env, GOBIN=out)
    secs = _run_with_progress(name, argv, cwd, benv)
    for src, dst in (spec.get("rename") or {}).items():
        os.replace(os.path.join(out, src), os.path.join(out, dst))
    missing = [b for b in spec["binaries"] if not os.path.exists(os.path.join(out, b))]
    if missing:
        raise SystemExit("build of %s produced no %s" % (name, ", ".join(missing)))
    if spec.get("after"):
        spec["after"](out, os.path.join(GOTOOLS, spec["moddir"]), benv)
    with open(stamp, "w") as f:
        f.write("%.0f\n" % secs)
    log("built %s in %.0fs -> %s" % (name, secs, out))
    return out, secs


def build_all(only=None):
    """Build what is missing; return name -> directory holding its binaries."""
    if shutil.which("go") is None:
        raise SystemExit("the Go toolchain is required to build the fleet (go not on PATH)")
    env = _go_env(GONOSUMDB)
    result = {}
    total = 0.0
    for name, spec in tools().items():
        if only and name not in only:
            continue
        result[name], secs = _build_one(name, spec, env)
        total += secs
    if not only or "cilium-charts" in only:
        result["charts"] = extract_charts(result["cilium-charts"])
        if "cilium" in result:
            dst = chart_path(cilium_version().lstrip("v"))
            if not os.path.exists(dst):
                shutil.copyfile(cilium_chart_path(), dst)
                log("chart %s from the Cilium module -> %s" % (cilium_version(), dst))
    if total:
        log("cold build time this run: %.0fs; cache size: %s" % (total, cache_size()))
    return result


def cilium_cli_version():
    """The Cilium module version whose cilium-cli/ is built (see hack/gotools/cilium-cli/go.mod
    for why it is not a github.com/cilium/cilium-cli release)."""
    return _gomod_version("cilium-cli", "github.com/cilium/cilium")


def cilium_cli_spec():
    """The upstream cilium-cli: github.com/cilium/cilium/cilium-cli/cmd/cilium, version string
    (`cilium version --client`) the Cilium module version, as its Makefile's git describe."""
    version = cilium_cli_version()
    return dict(
        version=version, moddir="cilium-cli", binaries=["cilium"],
        argv=["go", "build", "-trimpath", "-ldflags",
              "-s -w -X github.com/cilium/cilium/cilium-cli/defaults.CLIVersion=" + version,
              "-o", "{out}/cilium", "github.com/cilium/cilium/cilium-cli/cmd/cilium"],
    )


def build_cilium_cli():
    """Build (once, cached like the fleet's tools) the upstream cilium-cli; return the path of
    its `cilium` binary. Not part of build_all(): only the benchmark's peer needs it."""
    if shutil.which("go") is None:
        raise SystemExit("the Go toolchain is required to build cilium-cli (go not on PATH)")
    spec = cilium_cli_spec()
    out, secs = _build_one("cilium-cli", spec, _go_env(GONOSUMDB_CILIUM_CLI))
    if secs:
        log("cold build time this run: %.0fs; cache size: %s" % (secs, cache_size()))
    return os.path.join(out, "cilium")


def kwok_crd_file(plural):
    """kwok's own CRD manifest (kustomize/crd/bases of the pinned kwok module), e.g. "execs"."""
    proc = subprocess.run(["go", "mod", "download", "-json", "sigs.k8s.io/kwok@" + KWOK_VERSION], cwd=REPO,
                          env=_go_env(GONOSUMDB), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True)
    if proc.returncode != 0:
        raise SystemExit("cannot find the kwok %s module: %s" % (KWOK_VERSION, proc.stdout[-2000:]))
    path = os.path.join(json.loads(proc.stdout)["Dir"], "kustomize", "crd", "bases", "kwok.x-k8s.io_%s.yaml" % plural)
    if not os.path.exists(path):
        raise SystemExit("kwok %s has no CRD %s (%s)" % (KWOK_VERSION, plural, path))
    return path


def charts_dir():
    pin = _gomod_version("charts", "github.com/cilium/charts")
    return os.path.join(CACHE, "charts", pin)


def chart_versions():
    """Every chart version the fleet offers, oldest first."""
    return CHART_VERSIONS + (cilium_version().lstrip("v"),)


def chart_path(version):
    return os.path.join(charts_dir(), "cilium-%s.tgz" % version)


def extract_charts(tool_out):
    out = charts_dir()
    missing = [v for v in CHART_VERSIONS if not os.path.exists(chart_path(v))]
    if missing:
        log("writing real Cilium charts %s from github.com/cilium/charts" % ", ".join(missing))
        subprocess.run([os.path.join(tool_out, "cilium-charts"), "-out", out] + missing, check=True)
    return out


# What the cilium build copies out of github.com/cilium/cilium, relative to the module root.
CILIUM_CHART_SRC = "install/kubernetes/cilium"
CILIUM_CRD_SRC = "pkg/k8s/apis/cilium.io/client/crds"
# Files of Cilium's images, from the module (source -> path in the image): the
# clustermesh-apiserver image's etcd config, the cilium image's init scripts
# (images/cilium/Dockerfile) and the BPF sources the agent compiles at run time (its --lib-dir,
# /var/lib/cilium, holds bpf/).
CILIUM_IMAGE_FILES = {"clustermesh-apiserver/etcd-config.yaml": "var/lib/cilium/etcd-config.yaml",
                      "images/cilium/init-container.sh": "init-container.sh",
                      "plugins/cilium-cni/install-plugin.sh": "install-plugin.sh",
                      "plugins/cilium-cni/cni-uninstall.sh": "cni-uninstall.sh",
                      "bpf": "var/lib/cilium/bpf"}


def _module_dir(moddir, module, env):
    proc = subprocess.run(["go", "list", "-m", "-json", module], cwd=moddir, env=env, check=True,
                          stdout=subprocess.PIPE, universal_newlines=True)
    return json.loads(proc.stdout)["Dir"]


def copy_cilium_files(out, moddir, env):
    """Copy Cilium's real chart (as cilium-<version>.tgz), CRDs (crds/v2*/) and the
    clustermesh-apiserver image's own files (image/) next to the binaries."""
    src = _module_dir(moddir, "github.com/cilium/cilium", env)
    version = cilium_version().lstrip("v")
    log("  cilium: copying chart %s, CRDs and image files from %s" % (version, src))
    tgz = os.path.join(out, "cilium-%s.tgz" % version)

    def reset(info):
        info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
        info.mode = 0o755 if info.isdir() else 0o644
        return info
    with tarfile.open(tgz + ".tmp", "w:gz") as tar:
        tar.add(os.path.join(src, CILIUM_CHART_SRC), arcname="cilium", filter=reset)
    os.replace(tgz + ".tmp", tgz)
    crd_root = os.path.join(src, CILIUM_CRD_SRC)
    for group in sorted(os.listdir(crd_root)):
        if not group.startswith("v2"):
            continue
        for name in sorted(os.listdir(os.path.join(crd_root, group))):
            if name.endswith(".yaml"):
                dst = os.path.join(out, "crds", group, name)
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                shutil.copyfile(os.path.join(crd_root, group, name), dst)
    for rel, target in CILIUM_IMAGE_FILES.items():
        dst = os.path.join(out, "image", target)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        if os.path.isdir(os.path.join(src, rel)):
            shutil.rmtree(dst, ignore_errors=True)
            # the module cache is read-only: the copy must be writable like an image's files
            shutil.copytree(os.path.join(src, rel), dst, copy_function=shutil.copyfile)
        else:
            shutil.copyfile(os.path.join(src, rel), dst)
            if rel.endswith(".sh"):
                os.chmod(dst, 0o755)


def cilium_dir():
    """The cache directory of the cilium build (binaries, chart, crds/, image/)."""
    return tool_dir("cilium", tools()["cilium"])


def cilium_chart_path():
    return os.path.join(cilium_dir(), "cilium-%s.tgz" % cilium_version().lstrip("v"))


def cilium_crd_files():
    root = os.path.join(cilium_dir(), "crds")
    return [os.path.join(root, g, f) for g in sorted(os.listdir(root)) for f in sorted(os.listdir(os.path.join(root, g)))]


def cache_size():
    total = 0
    for root in (os.path.join(CACHE, "bin"), os.environ.get("GOMODCACHE", os.path.expanduser("~/go/pkg/mod")),
                 os.path.join(os.path.expanduser("~/.cache"), "go-build")):
        for dirpath, _, files in os.walk(root):
            for f in files:
                try:
                    total += os.lstat(os.path.join(dirpath, f)).st_size
                except OSError:
                    pass
    return "%.1f GiB (binaries + Go module cache + Go build cache)" % (total / 2 ** 30)


def binaries():
    """name -> absolute path of every built program (after build_all)."""
    paths = {}
    for name, spec in tools().items():
        out = tool_dir(name, spec)
        for b in spec["binaries"]:
            paths[b] = os.path.join(out, b)
    return paths
