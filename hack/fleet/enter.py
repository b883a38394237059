"""`kubectl exec` into a real container of the fleet's pod runtime (hack/fleet/pods.py), as a
container runtime does it: enter the mount and network namespaces and the root of the
container's process and run the command there.

kwok (the fleet's kubelet API) runs this on the host once per exec, through the shims of
hack/fleet/agent_standin.py, with MESHOPS_FLEET_CLUSTER naming the cluster,
MESHOPS_FLEET_CONTAINER the container and, through the kwok Exec object the runtime made for
each real pod, MESHOPS_FLEET_POD the pod. Standard library only, and it imports nothing of the
fleet's: every status read of the mesh runs it several times per cluster, on the same cores as
the API servers, so its start costs what `python -S` costs and no more.

    python -S hack/fleet/enter.py CONTAINER ARGV...
"""
import json
import os
import sys


def pods_file(fleet_dir):
    """The runtime's record of its pods and their container processes (written by pods.py)."""
    return os.path.join(fleet_dir, "pods.json")


def load_pods(fleet_dir):
    try:
        with open(pods_file(fleet_dir)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def container_pid(fleet_dir, cluster, container, pod_name=None):
    """(pid, None) of ``container`` in the cluster's one real pod running it (or in pod
    ``pod_name``), else (None, why)."""
    pids = [(key, p["containers"][container]["pid"]) for key, p in sorted(load_pods(fleet_dir).items())
            if p["cluster"] == cluster and (p["containers"].get(container) or {}).get("pid")
            and (not pod_name or p["name"] == pod_name)]
    if not pids:
        return None, "container %s is not running in %s of %s" % (
            container, "pod " + pod_name if pod_name else "any real pod", cluster)
    if len(pids) > 1:
        return None, "the fleet's exec cannot tell which pod is meant: %s run %s (kwok passes no pod name)" % (
            ", ".join(k for k, _ in pids), container)
    return pids[0][1], None


def nsenter_argv(pid, argv):
    """The command that runs ``argv`` inside the namespaces and root of process ``pid``."""
    return ["nsenter", "-t", str(pid), "-m", "-n", "-r", "-w"] + list(argv)


def exec_in_container(container, argv):
    """Replace this process with ``argv`` run in ``container`` of the pod the environment names
    (without a pod name, the cluster's one real pod running that container; with several, the
    exec is refused). Returns an exit code only when it cannot."""
    state = os.environ.get("MESHOPS_FLEET_STATE", "")
    pid, why = container_pid(os.path.dirname(state), os.environ.get("MESHOPS_FLEET_CLUSTER"), container,
                             os.environ.get("MESHOPS_FLEET_POD"))
    if pid is None:
        sys.stderr.write(why + "\n")
        return 126
    os.execvp("nsenter", nsenter_argv(pid, argv))
    return 127


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit("usage: python -S hack/fleet/enter.py CONTAINER ARGV...")
    sys.exit(exec_in_container(sys.argv[1], sys.argv[2:]))
