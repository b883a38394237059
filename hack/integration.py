"""The integration suite in shards, each on a fleet of its own, side by side.

    python -m hack.integration [--shards N] [-- extra pytest arguments]

The test files are split into N shards of about equal time (greedy, from the seconds per file in
tests/integration/durations.json; a file not listed there counts DEFAULT_SECONDS). Shard 0 uses the
default fleet (MESHOPS_FLEET_DIR, MESHOPS_FLEET_PORT_BASE: what `make fleet-up` starts, kept
afterwards for Molecule); shard i > 0 a fleet of its own in .fleet-shard<i> at port base + 1000 * i,
started here and stopped at the end. Every line of a shard is printed as it comes, prefixed with
the shard's name; its full log is in build/ci/integration-<shard>.log.

--budget (MESHOPS_INTEGRATION_BUDGET) seconds: then pytest is interrupted and prints its summary,
so that a run cut short still says what failed (`make test` sets it from the CI's time limit).

N is MESHOPS_INTEGRATION_SHARDS (default 1, at most 2: two fleets at once at the most). On the
2-core CI machine one shard is the default: the suite alone keeps both cores about 70 % busy
(test_realmesh_status: 323 of 462 CPU-seconds), an idle fleet of 4 clusters takes about half a core
(4 API servers at ~6 %, etcd ~5 %, the pod runtime ~10 %), and a trial with two shards (with other
work on the machine) passed 54 tests in 29 minutes, slower than one shard. Use 2 with 4 or more cores.

Exit status: 0 when every shard passed.
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = os.path.join(REPO, "tests", "integration")
DURATIONS = os.path.join(TESTS, "durations.json")
DEFAULT_SECONDS = 60.0
LOGDIR = os.path.join(REPO, "build", "ci")


def log(msg):
    print("[integration] %s" % msg, flush=True)


def test_files():
    return sorted(f for f in os.listdir(TESTS) if f.startswith("test_") and f.endswith(".py"))


def split(files, shards, seconds):
    """``shards`` lists of files of about equal total time (longest first onto the lightest shard)."""
    out = [[] for _ in range(shards)]
    load = [0.0] * shards
    for f in sorted(files, key=lambda f: (-seconds.get(f, DEFAULT_SECONDS), f)):
        i = load.index(min(load))
        out[i].append(f)
        load[i] += seconds.get(f, DEFAULT_SECONDS)
    return [(sorted(fs), load[i]) for i, fs in enumerate(out)]


def shard_env(i):
    env = dict(os.environ)
    base = int(env.get("MESHOPS_FLEET_PORT_BASE", "21000"))
    if i > 0:
        env["MESHOPS_FLEET_DIR"] = os.path.join(REPO, ".fleet-shard%d" % i)
        env["MESHOPS_FLEET_PORT_BASE"] = str(base + 1000 * i)
    env.setdefault("MESHOPS_FLEET_CLUSTERS", "4")
    return env


def fleet(action, env, name, extra=()):
    argv = [sys.executable, "-m", "hack.fleet", action] + list(extra)
    return subprocess.call(argv, cwd=REPO, env=env,
                           stdout=None if action == "up" else subprocess.DEVNULL,
                           stderr=subprocess.STDOUT if action == "up" else subprocess.DEVNULL)


def run_shard(i, name, files, env, pytest_args, results, deadline=None):
    logfile = os.path.join(LOGDIR, "integration-%s.log" % name)
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-ra"] + \
        list(pytest_args) + [os.path.join("tests", "integration", f) for f in files]
    started = time.time()
    with open(logfile, "w") as out:
        proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                universal_newlines=True, bufsize=1, preexec_fn=interruptible)
        if deadline:
            threading.Thread(target=interrupt_at, args=(proc, name, deadline), daemon=True).start()
        for line in proc.stdout:
            out.write(line)
            sys.stdout.write("[%s] %s" % (name, line))
            sys.stdout.flush()
        rc = proc.wait()
    results[i] = (rc, time.time() - started, logfile)


def interruptible():
    """Popen's preexec_fn for a run that interrupt_at may stop: SIGINT back to its default. A
    command started in the background by a shell without job control (``bash .ci/run &``, or the
    static checks .ci/run runs beside the tests) inherits SIGINT ignored, and a Python started so
    installs no KeyboardInterrupt handler: pytest would not stop, and would be killed silently."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def interrupt_at(proc, name, deadline, grace=180):
    """At ``deadline`` (time.time()) interrupt pytest as Ctrl-C would: it ends the running test and
    prints its summary (what passed, what failed and why) before an outer time limit kills
    everything silently. Killed if it has not ended ``grace`` seconds later."""
    while proc.poll() is None and time.time() < deadline:
        time.sleep(1)
    if proc.poll() is not None:
        return
    log("shard %s: the time budget is spent: interrupting pytest so that it prints its summary" % name)
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shards", type=int, default=int(os.environ.get("MESHOPS_INTEGRATION_SHARDS", "1")))
    parser.add_argument("--budget", type=float, default=float(os.environ.get("MESHOPS_INTEGRATION_BUDGET", "0")),
                        help="seconds after which pytest is interrupted and prints its summary (0: none)")
    parser.add_argument("pytest_args", nargs="*")
    args = parser.parse_args(argv)
    shards = max(1, min(2, args.shards))  # at most two fleets at once on this machine
    try:
        with open(DURATIONS) as f:
            seconds = json.load(f)
    except (OSError, ValueError):
        seconds = {}
    plan = split(test_files(), shards, seconds)
    os.makedirs(LOGDIR, exist_ok=True)
    names = ["a", "b"][:shards]
    envs = [shard_env(i) for i in range(shards)]
    for i, (files, total) in enumerate(plan):
        log("shard %s (fleet %s, port base %s): %d files, about %.0f s by the last timings: %s" % (
            names[i], envs[i].get("MESHOPS_FLEET_DIR", os.path.join(REPO, ".fleet")),
            envs[i].get("MESHOPS_FLEET_PORT_BASE", "21000"), len(files), total, " ".join(files)))
    started_here = []
    for i in range(1, shards):
        log("starting the fleet of shard %s" % names[i])
        if fleet("up", envs[i], names[i], ["--clusters", envs[i]["MESHOPS_FLEET_CLUSTERS"]]) != 0:
            log("the fleet of shard %s did not come up; its files run after shard a on the default fleet" % names[i])
            plan[0] = (plan[0][0] + plan[i][0], plan[0][1] + plan[i][1])
            plan[i] = ([], 0.0)
            fleet("down", envs[i], names[i])
        else:
            started_here.append(i)
    results = {}
    threads = []
    t0 = time.time()
    for i, (files, _total) in enumerate(plan):
        if not files:
            continue
        deadline = t0 + args.budget if args.budget > 0 else None
        t = threading.Thread(target=run_shard, args=(i, names[i], files, envs[i], args.pytest_args, results, deadline))
        t.start()
        threads.append(t)
    try:
        for t in threads:
            t.join()
    finally:
        for i in started_here:
            fleet("down", envs[i], names[i])
    rc = 0
    for i in sorted(results):
        code, wall, logfile = results[i]
        if code == 5 and args.pytest_args:
            code = 0  # a filter (-k) that selects nothing in this shard
        log("shard %s: %s in %.0f s (log %s)" % (names[i], "passed" if code == 0 else "FAILED (pytest exit %d)" % code,
                                                 wall, os.path.relpath(logfile, REPO)))
        rc = rc or code
    log("all shards done in %.0f s" % (time.time() - t0))
    return 1 if rc else 0


if __name__ == "__main__":
    sys.exit(main())
