# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0
"""ClusterMesh status, from plain data (pure: no cluster).

Inputs are what ``clustermesh_status`` collects:

* the agents' ``cilium-dbg status -o json`` output, whose ``cluster-mesh.clusters[]``
  entries carry ``name``, ``connected``, ``ready``, ``status``, ``num-nodes``,
  ``num-failures``, ``last-failure``, ``config{required, retrieved, cluster-id,
  kvstoremesh, ...}`` and ``synced{nodes, endpoints, identities, services, ...}``;
* KVStoreMesh's ``kvstoremesh-dbg status -o json`` output (the same remote-cluster
  entries, as a bare list or under ``clusters`` / ``cluster-mesh.clusters``);
* Secret ``cilium-clustermesh`` (expected peers: keys whose decoded value contains
  ``endpoints:``, minus the local name; values are read here and never returned);
* Deployment ``clustermesh-apiserver``.

``aggregate`` counts, per peer, how many agents have it configured / connected / ready,
the way cilium-cli prints "X/Y configured, Z/Y connected".
"""

import base64
import binascii
import json
import re

from ansible_collections.meshops.cilium.plugins.module_utils.common import UNREAD, counted, deployment_ready
from ansible_collections.meshops.cilium.plugins.module_utils.errors import MeshopsError, MeshopsValueError


class StatusParseError(MeshopsValueError):
    pass


def _int(value, default=0):
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _load(output):
    if isinstance(output, (dict, list)):
        return output
    if isinstance(output, bytes):
        output = output.decode('utf-8', 'replace')
    text = (output or '').strip()
    if not text:
        raise StatusParseError('empty output')
    try:
        return json.loads(text)
    except ValueError:
        # Some exec transports prepend warnings; take the first JSON document.
        for opener in ('{', '['):
            i = text.find(opener)
            if i > 0:
                try:
                    return json.loads(text[i:])
                except ValueError:
                    continue
        raise StatusParseError('not JSON: %s' % text[:200])


SIMULATED_KEY = 'meshops-simulated'


def simulated_mark(output):
    """The reason a status output says it is simulated (a test stand-in such as the local
    fleet's agent stand-in marks its JSON with ``meshops-simulated``), or None."""
    try:
        data = _load(output)
    except StatusParseError:
        return None
    if isinstance(data, dict) and data.get(SIMULATED_KEY):
        return str(data[SIMULATED_KEY])
    return None


def parse_remote_cluster(entry):
    """One ``cluster-mesh.clusters[]`` entry as a flat dict with snake_case keys."""
    config = entry.get('config') or {}
    synced = entry.get('synced') or {}
    return {
        'name': entry.get('name'),
        'connected': bool(entry.get('connected')),
        'ready': bool(entry.get('ready')),
        'status': entry.get('status') or '',
        'num_nodes': _int(entry.get('num-nodes')),
        'num_endpoints': _int(entry.get('num-endpoints')),
        'num_identities': _int(entry.get('num-identities')),
        'num_shared_services': _int(entry.get('num-shared-services')),
        'num_failures': _int(entry.get('num-failures')),
        'last_failure': entry.get('last-failure') or None,
        'config_required': bool(config.get('required')),
        'config_retrieved': bool(config.get('retrieved')),
        'remote_cluster_id': config.get('cluster-id'),
        'remote_kvstoremesh': config.get('kvstoremesh'),
        'synced': dict((k, bool(v)) for k, v in synced.items()),
    }


def parse_agent_status(output):
    """``cilium-dbg status -o json`` (str, bytes or decoded) -> ``{name: remote cluster}``.

    An agent without ClusterMesh (no ``cluster-mesh`` key) has no remote clusters.
    """
    data = _load(output)
    if not isinstance(data, dict):
        raise StatusParseError('agent status is not a JSON object')
    mesh = data.get('cluster-mesh') or data.get('clusterMesh') or {}
    return _clusters_by_name(mesh.get('clusters') or [])


def parse_kvstoremesh_status(output):
    """``kvstoremesh-dbg status -o json`` -> ``{name: remote cluster}``.

    Accepts a bare list of remote clusters, ``{clusters: [...]}`` or the agent's shape.
    """
    data = _load(output)
    if isinstance(data, list):
        return _clusters_by_name(data)
    if isinstance(data, dict):
        if 'cluster-mesh' in data:
            return parse_agent_status(data)
        return _clusters_by_name(data.get('clusters') or [])
    raise StatusParseError('kvstoremesh status is neither a list nor an object')


TROUBLESHOOT_HEADER = re.compile(r'^Cluster "([^"]+)":\s*$')
TROUBLESHOOT_FAILURE = u'\u274c'  # the cross mark Cilium's troubleshoot prints before each failed check


def parse_troubleshoot(output):
    """``{cluster: [failed check, ...]}`` from ``kvstoremesh-dbg troubleshoot`` text.

    Cilium prints one ``Cluster "NAME":`` section per remote cluster, then one line per check
    (configuration, etcd client, DNS, TCP, TLS, etcd version); a failed check starts with a
    cross mark. Clusters without a failed check map to an empty list.
    """
    out = {}
    current = None
    for line in (output or '').splitlines():
        m = TROUBLESHOOT_HEADER.match(line.strip())
        if m:
            current = m.group(1)
            out.setdefault(current, [])
            continue
        text = line.strip()
        if current is not None and text.startswith(TROUBLESHOOT_FAILURE):
            text = ' '.join(text[len(TROUBLESHOOT_FAILURE):].split())
            if text and text not in out[current]:
                out[current].append(text[:400])
    return out


def _clusters_by_name(entries):
    out = {}
    for e in entries:
        if isinstance(e, dict) and e.get('name'):
            out[e['name']] = parse_remote_cluster(e)
    return out


# ---------------------------------------------------------------------------
# Expected peers and the apiserver
# ---------------------------------------------------------------------------

def expected_peers(secret, local_name=None):
    """Peer names from Secret ``cilium-clustermesh``: keys whose decoded value contains
    ``endpoints:``, minus ``local_name``; sorted. Only names leave this function."""
    data = (secret or {}).get('data') or {}
    names = []
    for key, value in data.items():
        try:
            text = base64.b64decode(value or '').decode('utf-8', 'replace')
        except (binascii.Error, ValueError, TypeError):
            continue
        if 'endpoints:' in text and key != local_name:
            names.append(key)
    return sorted(names)


# ---------------------------------------------------------------------------
# Aggregation
# ---------------------------------------------------------------------------

def aggregate(results, expected, kind='agent'):
    """Per-peer counts across agents (or KVStoreMesh replicas).

    :param results: ``{pod: {'clusters': {name: remote cluster}}}`` or
        ``{pod: {'error': reason}}`` for a pod whose status could not be read.
    :param expected: expected peer names.
    :returns: ``{total, available, unavailable: {pod: reason}, peers: {name: {...}}}``. Each
        peer has ``expected``, ``configured``, ``connected``, ``ready``, ``failures``
        (sum of num_failures), ``not_configured``/``not_connected``/``not_ready`` (pod
        names), ``problems`` (``{pod: text}``) and ``summary`` ("X/Y configured, Z/Y
        connected, R/Y ready"). Y counts only pods whose status was read.
    """
    available = dict((pod, r['clusters']) for pod, r in results.items() if 'clusters' in r)
    simulated = dict((pod, r['simulated']) for pod, r in results.items() if r.get('simulated'))
    unavailable = dict((pod, r.get('error') or 'unknown error') for pod, r in results.items()
                       if 'clusters' not in r)
    names = set(expected)
    for clusters in available.values():
        names.update(clusters)
    peers = {}
    total = len(available)
    for name in sorted(names):
        p = {'name': name, 'expected': name in expected, 'configured': 0, 'connected': 0, 'ready': 0,
             'failures': 0, 'not_configured': [], 'not_connected': [], 'not_ready': [], 'problems': {},
             'causes': {}}
        for pod in sorted(available):
            rc = available[pod].get(name)
            if rc is None:
                p['not_configured'].append(pod)
                continue
            p['configured'] += 1
            p['failures'] += rc['num_failures']
            if rc['connected']:
                p['connected'] += 1
            else:
                p['not_connected'].append(pod)
            if rc['ready']:
                p['ready'] += 1
            else:
                p['not_ready'].append(pod)
                p['problems'][pod] = describe_remote(rc)
                if rc.get('cause'):
                    p['causes'][pod] = list(rc['cause'])
        p['summary'] = '%d/%d configured, %d/%d connected, %d/%d ready' % (
            p['configured'], total, p['connected'], total, p['ready'], total)
        p['ok'] = bool(p['expected'] and total and p['ready'] == total)
        peers[name] = p
    return {'kind': kind, 'total': len(results), 'available': total, 'unavailable': unavailable,
            'peers': peers, 'simulated': simulated}


def describe_remote(rc):
    """Why one remote cluster is not ready on one agent, in a few words."""
    bits = []
    if not rc['connected']:
        bits.append('not connected')
    if rc['config_required'] and not rc['config_retrieved']:
        bits.append('remote cluster configuration required but not retrieved')
    unsynced = sorted(k for k, v in rc['synced'].items() if not v)
    if rc['connected'] and unsynced:
        bits.append('not synced: %s' % ', '.join(unsynced))
    if rc['status']:
        bits.append('status "%s"' % rc['status'])
    if rc['num_failures']:
        bits.append('%s, last at %s' % (counted(rc['num_failures'], 'failure'), rc['last_failure'] or 'unknown'))
    if rc.get('cause'):
        bits.append('cause (kvstoremesh-dbg troubleshoot): %s' % ' / '.join(rc['cause']))
    return '; '.join(bits) or 'not ready'


def not_ready_reasons(status):
    """One sentence per thing that is not ready in a ``build_status`` result."""
    out = []
    cl = status.get('cluster') or 'cluster'
    api = status.get('apiserver') or {}
    if status.get('clustermesh_enabled') is False:
        out.append('%s: the clustermesh-apiserver is not deployed (Deployment clustermesh-apiserver missing)' % cl)
    elif api and not api.get('ready'):
        out.append('%s: Deployment clustermesh-apiserver not Ready (%s/%s ready, %s updated)' % (
            cl, api.get('ready_replicas'), api.get('replicas'), api.get('updated_replicas')))
    for section, what in (('agents', 'agent'), ('kvstoremesh', 'KVStoreMesh')):
        agg = status.get(section)
        if not agg or agg.get('skipped') or agg.get('unverifiable'):
            continue
        for pod, reason in sorted(agg['unavailable'].items()):
            out.append('%s: %s %s: status unavailable: %s' % (cl, what, pod, reason))
        if agg['available'] == 0 and not agg['unavailable'] and status.get('expected_peers'):
            out.append('%s: no %s pod found' % (cl, what))
        for name, p in sorted(agg['peers'].items()):
            if not p['expected']:
                out.append('%s: %s pods report peer %s that Secret cilium-clustermesh does not list '
                           '(%s)' % (cl, what, name, p['summary']))
                continue
            if p['not_configured']:
                out.append('%s: peer %s not configured on %s %s' % (
                    cl, name, what, ', '.join(p['not_configured'])))
            for pod in sorted(p['problems']):
                out.append('%s: peer %s not ready on %s %s: %s' % (cl, name, what, pod, p['problems'][pod]))
    return out


def _section(results, expected, kind, mode):
    if results is None:
        return {'skipped': True}
    agg = aggregate(results, expected, kind)
    # auto: when NOT ONE pod could be read (no exec support, no permission), the section is
    # reported as unverifiable instead of not ready; one readable pod makes every
    # unreadable one count as not ready.
    agg['unverifiable'] = bool(mode == 'auto' and agg['available'] == 0 and agg['unavailable'])
    return agg


def build_status(cluster, deployment, clustermesh_secret, agents=None, kvstoremesh=None,
                 kvstoremesh_enabled=None, local_name=None, mode='auto', expected=None):
    """One cluster's status from plain data.

    :param clustermesh_secret: Secret ``cilium-clustermesh`` (dict) or None; or pass
        ``expected`` (peer names already taken from it) and ``clustermesh_secret=True``.

    :param agents: ``aggregate`` input for the agents, or None when skipped.
    :param kvstoremesh: the same for KVStoreMesh pods, or None when skipped / off.
    :param mode: ``auto`` (a section none of whose pods could be read is unverifiable, not
        a failure) or ``require`` (an unreadable pod is always not ready).
    """
    api = deployment_ready(deployment)
    if expected is None:
        expected = expected_peers(clustermesh_secret if isinstance(clustermesh_secret, dict) else None,
                                  local_name)
    out = {
        'cluster': cluster,
        'local_name': local_name,
        'clustermesh_enabled': api['exists'],
        'apiserver': api,
        'config_secret': bool(clustermesh_secret),
        'expected_peers': expected,
        'kvstoremesh_enabled': kvstoremesh_enabled,
        'agents': _section(agents, expected, 'agent', mode),
        'kvstoremesh': _section(kvstoremesh, expected, 'kvstoremesh', mode),
    }
    reasons = not_ready_reasons(out)
    out['not_ready'] = reasons
    out['ready'] = not reasons
    out['verified'] = {
        'apiserver': True,
        'agents': bool(out['agents'].get('available')),
        'kvstoremesh': bool(out['kvstoremesh'].get('available')),
    }
    # answers that said they are simulated (a test stand-in), per section
    out['simulated'] = dict((k, sorted(out[k]['simulated'])) for k in ('agents', 'kvstoremesh')
                            if out[k].get('simulated'))
    return out


# ---------------------------------------------------------------------------
# Reading a live cluster (the only part that does I/O)
# ---------------------------------------------------------------------------

APISERVER = 'clustermesh-apiserver'
CLUSTERMESH_SECRET = 'cilium-clustermesh'
AGENT_APP = 'cilium'
AGENT_CONTAINER = 'cilium-agent'
AGENT_COMMANDS = (['cilium-dbg', 'status', '-o', 'json'], ['cilium', 'status', '-o', 'json'])
KVSTOREMESH_APP = 'clustermesh-apiserver'
KVSTOREMESH_CONTAINER = 'kvstoremesh'
# the image's PATH holds /usr/bin: the bare name works there and wherever the binary is on PATH
KVSTOREMESH_COMMANDS = (['clustermesh-apiserver', 'kvstoremesh-dbg', 'status', '-o', 'json'],
                        ['/usr/bin/clustermesh-apiserver', 'kvstoremesh-dbg', 'status', '-o', 'json'])


# Cilium's own diagnosis of the remote clusters a KVStoreMesh cannot use: DNS, TCP, TLS (CA,
# names, client certificate) and etcd checks with the pod's own configuration and network.
KVSTOREMESH_TROUBLESHOOT = (['clustermesh-apiserver', 'kvstoremesh-dbg', 'troubleshoot'],
                            ['/usr/bin/clustermesh-apiserver', 'kvstoremesh-dbg', 'troubleshoot'])
TROUBLESHOOT_TIMEOUT = 5
# a wait reads Deployment clustermesh-apiserver alone this often while it rolls out
ROLLOUT_PAUSE = 0.5


class ExecError(MeshopsError):
    """The exec call itself failed (transport, permission, no such container)."""


def kubernetes_exec(cluster, timeout):
    """An ``exec_fn(pod, namespace, container, command) -> (rc, stdout, stderr)`` using
    ``kubernetes.stream``. Each call uses its own ApiClient: ``stream`` swaps a method of
    the client it is given, so a shared client is not safe across threads."""
    from kubernetes import client as k8s_client
    from kubernetes.stream import stream
    try:
        # The websocket handshake takes no timeout from kubernetes.stream: bound it here (this
        # process only runs this module).
        import websocket
        websocket.setdefaulttimeout(cluster.connect_timeout + timeout)
    except (ImportError, AttributeError):
        pass

    def run(pod, namespace, container, command):
        api_client = k8s_client.ApiClient(configuration=cluster.configuration)
        api_client.user_agent = cluster.api_client.user_agent
        try:
            core = k8s_client.CoreV1Api(api_client)
            try:
                ws = stream(core.connect_get_namespaced_pod_exec, pod, namespace, container=container,
                            command=list(command), stdin=False, stdout=True, stderr=True, tty=False,
                            _preload_content=False, _request_timeout=(cluster.connect_timeout, timeout))
            except Exception as e:
                raise ExecError(_exec_error_text(cluster, e, pod, container))
            try:
                ws.run_forever(timeout=timeout)
                if ws.is_open():
                    raise ExecError('%s did not finish within %ss' % (' '.join(command), timeout))
                out, err = ws.read_stdout() or '', ws.read_stderr() or ''
                try:
                    rc = ws.returncode
                except Exception:
                    rc = None if not out else 0
                return rc, out, err
            except ExecError:
                raise
            except Exception as e:  # the stream broke after the handshake (differs by client version)
                raise ExecError(_exec_error_text(cluster, e, pod, container))
            finally:
                try:
                    ws.close()
                except Exception:
                    pass
        finally:
            try:
                api_client.close()
            except Exception:
                pass
    return run


def _exec_error_text(cluster, exc, pod, container):
    from ansible_collections.meshops.cilium.plugins.module_utils.cluster import translate_error
    action = 'exec into pod %s container %s' % (pod, container)
    text = translate_error(exc, action=action)
    if action not in text:
        text = '%s failed: %s' % (action, text)
    return ' '.join(text.split())[:400]


def _pod_ready(pod):
    st = pod.get('status') or {}
    if st.get('phase') != 'Running':
        return 'pod is %s' % (st.get('phase') or 'in an unknown phase')
    return None


def read_pod_status(exec_fn, pod, namespace, container, commands, parse):
    """``{'clusters': {...}}`` or ``{'error': reason}`` for one pod; never raises."""
    tried = []
    for command in commands:
        try:
            rc, out, err = exec_fn(pod, namespace, container, command)
        except ExecError as e:
            return {'error': str(e)}
        except Exception as e:  # a bug in a transport must not become a traceback
            return {'error': '%s: %s' % (type(e).__name__, e)}
        if rc not in (0, None):
            tried.append('%s exited %s: %s' % (command[0], rc, ' '.join((err or out or '').split())[:300]))
            continue
        try:
            result = {'clusters': parse(out)}
        except StatusParseError as e:
            tried.append('%s: %s' % (command[0], e))
            continue
        mark = simulated_mark(out)
        if mark:
            result['simulated'] = mark
        return result
    return {'error': '; '.join(tried) or 'no status'}


def list_status_pods(cluster, namespace, apps):
    """``{app: [pod dict, ...]}`` for the pods labelled ``k8s-app`` = each of ``apps``, in one request."""
    selector = 'k8s-app in (%s)' % ','.join(sorted(apps))
    pods = cluster.list_items('list Pods %s in namespace %s' % (selector, namespace),
                              cluster.core.list_namespaced_pod, namespace, label_selector=selector)
    out = dict((app, []) for app in apps)
    for pod in pods:
        app = ((pod.get('metadata') or {}).get('labels') or {}).get('k8s-app')
        if app in out:
            out[app].append(pod)
    return out


def collect_pods(pods, namespace, container, commands, parse, exec_fn, pool):
    """Futures of the status command in every running pod of ``pods`` (on ``pool``); ``result(futures)``
    turns them into ``{pod: status}``."""
    futures = {}
    for pod in pods:
        name = (pod.get('metadata') or {}).get('name')
        why = _pod_ready(pod)
        futures[name] = why or pool.submit(read_pod_status, exec_fn, name, namespace, container, commands, parse)
    return futures


def collected(futures):
    """``{pod: status}`` of ``collect_pods``' futures (a reason string stands for a pod not run)."""
    return dict((name, {'error': f} if isinstance(f, str) else f.result()) for name, f in futures.items())


def diagnose_pod(exec_fn, pod, namespace, container, clusters, commands=KVSTOREMESH_TROUBLESHOOT):
    """Add ``cause`` (Cilium's failed checks) to the not-ready entries of ``clusters`` (one pod's
    parsed status) by running its troubleshoot command for those peers; never raises."""
    peers = sorted(name for name, rc in clusters.items() if not rc['ready'])
    if not peers:
        return
    for command in commands:
        argv = list(command) + ['--timeout', '%ds' % TROUBLESHOOT_TIMEOUT] + peers
        try:
            rc, out, err = exec_fn(pod, namespace, container, argv)
        except Exception:  # the diagnosis is an extra: the status itself was already read
            return
        found = parse_troubleshoot(out)
        if not found:  # not this binary (an exec may end without an exit code): try the next
            continue
        for name in peers:
            if found.get(name):
                clusters[name]['cause'] = found[name]
        return


def diagnose(exec_fn, namespace, container, results, parallel):
    """``diagnose_pod`` for every pod of ``results`` whose status was read and lists a peer that
    is not ready (bounded concurrency)."""
    from concurrent.futures import ThreadPoolExecutor

    todo = [(pod, r['clusters']) for pod, r in sorted(results.items())
            if 'clusters' in r and not r.get('simulated') and any(not c['ready'] for c in r['clusters'].values())]
    if not todo:
        return
    with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(todo)))) as pool:
        for fut in [pool.submit(diagnose_pod, exec_fn, pod, namespace, container, clusters)
                    for pod, clusters in todo]:
            fut.result()


def await_apiserver_rollout(cluster, namespace='kube-system', timeout=300, sleep=None, clock=None):
    """The first part of a wait for the mesh status: read Deployment ``clustermesh-apiserver`` alone (one
    request, no exec) every ``ROLLOUT_PAUSE`` seconds until it is Ready, it does not exist, or ``timeout``
    would pass. While it rolls out the mesh status cannot be ready, and the status commands of a full read
    (a process in every agent and KVStoreMesh pod) would only compete with the pods starting. Returns the
    number of reads; the full read that follows reports whatever is still not ready."""
    import time
    sleep, clock = sleep or time.sleep, clock or time.time
    deadline = clock() + max(0, timeout)
    reads = 0
    while True:
        reads += 1
        dep = cluster.read_deployment(namespace, APISERVER, missing_ok=True)
        if dep is None or deployment_ready(dep)['ready'] or clock() + ROLLOUT_PAUSE > deadline:
            return reads
        sleep(ROLLOUT_PAUSE)


def read_status(cluster, namespace='kube-system', agent_status='auto', parallel=8, exec_timeout=30,
                exec_fn=None, config=UNREAD):
    """Everything ``build_status`` needs, read from a live cluster.

    Reads Deployment ``clustermesh-apiserver``, ConfigMap ``cilium-config`` (local name; ``config``: that
    ConfigMap when the caller has read it already, None when it is missing),
    Secret ``cilium-clustermesh`` (key names only leave this function) and, unless
    ``agent_status == 'skip'``, execs the status commands in the agents and KVStoreMesh.
    """
    deployment = cluster.read_deployment(namespace, APISERVER, missing_ok=True)
    if config is UNREAD:
        config = cluster.read_config_map(namespace, 'cilium-config', missing_ok=True)
    local_name = ((config or {}).get('data') or {}).get('cluster-name')
    secret = cluster.read_secret(namespace, CLUSTERMESH_SECRET, missing_ok=True)
    expected = expected_peers(secret, local_name)
    has_secret = secret is not None
    del secret
    containers = ((((deployment or {}).get('spec') or {}).get('template') or {}).get('spec') or {}).get(
        'containers') or []
    kvsm = any(c.get('name') == KVSTOREMESH_CONTAINER for c in containers) if deployment else None
    agents = kvstoremesh = None
    if agent_status != 'skip':
        from concurrent.futures import ThreadPoolExecutor
        exec_fn = exec_fn or kubernetes_exec(cluster, exec_timeout)
        # one list for the agents and the KVStoreMesh pods; their status commands run side by side
        pods = list_status_pods(cluster, namespace, [AGENT_APP] + ([KVSTOREMESH_APP] if kvsm else []))
        with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
            agent_futures = collect_pods(pods[AGENT_APP], namespace, AGENT_CONTAINER, AGENT_COMMANDS,
                                         parse_agent_status, exec_fn, pool)
            kvsm_futures = collect_pods(pods[KVSTOREMESH_APP], namespace, KVSTOREMESH_CONTAINER,
                                        KVSTOREMESH_COMMANDS, parse_kvstoremesh_status, exec_fn, pool) if kvsm else None
            agents = collected(agent_futures)
            kvstoremesh = collected(kvsm_futures) if kvsm else None
        if kvsm:
            diagnose(exec_fn, namespace, KVSTOREMESH_CONTAINER, kvstoremesh, parallel)
    return build_status(cluster.name, deployment, has_secret, agents=agents, kvstoremesh=kvstoremesh,
                        kvstoremesh_enabled=kvsm, local_name=local_name,
                        mode='require' if agent_status == 'require' else 'auto', expected=expected)


def status_result(st, namespace, agent_status):
    """What clustermesh_status returns for ``st`` (``build_status`` with ``metrics``), and what
    clustermesh_info returns under ``status``."""
    out = dict(st)
    out.pop('cluster', None)
    out.update(namespace=namespace, agent_status=agent_status)
    return out


def status_warnings(st):
    """What a reader of ``st`` must be told: metrics not read, unverifiable or simulated parts."""
    out = []
    if st['metrics'] and st['metrics']['unavailable']:
        out.append('Cilium metrics not read from %s' % '; '.join(
            '%s (%s)' % kv for kv in sorted(st['metrics']['unavailable'].items()))[:800])
    for kind, label in (('agents', 'agent'), ('kvstoremesh', 'KVStoreMesh')):
        sec = st[kind]
        if sec.get('unverifiable'):
            reasons = sorted(set(sec['unavailable'].values()))
            out.append('%s status could not be read from any of %d pods, so per-peer connectivity was NOT '
                       'verified (control plane only): %s' % (label, sec['total'], '; '.join(reasons)[:500]))
    for kind, pods in sorted(st['simulated'].items()):
        reason = sorted(set(st[kind]['simulated'].values()))
        out.append('%s status of %d pods is SIMULATED, not read from Cilium: %s' % (kind, len(pods), '; '.join(reason)))
    return out
