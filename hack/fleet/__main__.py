"""Command line of the local fleet: python -m hack.fleet {build,build-cilium-cli,up,down,status,stop-apiserver,start-apiserver}."""
import argparse
import signal
import sys

from . import build, runner


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m hack.fleet", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("build", help="build (or find cached) etcd, Kubernetes, kwok, helm and the Cilium charts")
    sub.add_parser("build-cilium-cli", help="build (or find cached) the upstream cilium-cli, the benchmark's "
                   "reference peer (not part of build)")
    up = sub.add_parser("up", help="start N clusters on loopback")
    up.add_argument("--clusters", type=int, default=3)
    sub.add_parser("down", help="stop every process the fleet started and remove its state")
    sub.add_parser("status", help="show each cluster's processes and memory")
    stop = sub.add_parser("stop-apiserver", help="kill one cluster's kube-apiserver (fault tests)")
    stop.add_argument("cluster", help="e.g. mesh-2")
    stop.add_argument("--graceful", action="store_true", help="SIGTERM instead of SIGKILL")
    start = sub.add_parser("start-apiserver", help="start a stopped kube-apiserver again and wait until ready")
    start.add_argument("cluster", help="e.g. mesh-2")
    sub.add_parser("lb-controller", help=argparse.SUPPRESS)
    sub.add_parser("pod-runtime", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.cmd == "build":
        build.build_all()
        build.log("tools ready; cache %s" % build.cache_size())
        return 0
    if args.cmd == "build-cilium-cli":
        print(build.build_cilium_cli(), flush=True)
        return 0
    if args.cmd == "up":
        if not 1 <= args.clusters <= 50:
            p.error("--clusters must be between 1 and 50")
        runner.up(args.clusters)
        return 0
    if args.cmd == "down":
        dead = runner.down()
        return 1 if dead else 0
    if args.cmd == "status":
        return runner.status()
    if args.cmd in ("stop-apiserver", "start-apiserver"):
        try:
            if args.cmd == "stop-apiserver":
                runner.stop_apiserver(args.cluster, signal.SIGTERM if args.graceful else signal.SIGKILL)
            else:
                runner.start_apiserver(args.cluster)
        except KeyError:
            p.error("no cluster %s in the fleet" % args.cluster)
        return 0
    if args.cmd == "lb-controller":
        from . import lb  # noqa: PLC0415
        fleet = runner.Fleet.load()
        if fleet is None:
            sys.exit("no fleet state")
        lb.run(fleet)
    if args.cmd == "pod-runtime":
        from . import pods  # noqa: PLC0415
        fleet = runner.Fleet.load()
        if fleet is None:
            sys.exit("no fleet state")
        pods.Runtime(fleet.state, runner.FLEET_DIR, build.REPO).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
