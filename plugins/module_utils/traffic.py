# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0
"""Cross-cluster traffic check through a Cilium global Service.

In every cluster: Namespace ``<namespace>``, an echo server Deployment ``<name>-<cluster>``
(agnhost ``netexec``: ``GET /hostname`` answers with the pod's name, which carries the
cluster's name) and Service ``<name>`` annotated ``service.cilium.io/global: "true"`` (same
name and namespace everywhere, so Cilium load-balances it across the mesh). Then, in one
cluster, a client Job requests the Service many times and prints one line per request; the
answering clusters are read back from the pod names in its log.

The first part is pure (rendering, parsing, aggregation, messages); the functions at the end
do the I/O with the kubernetes client.
"""

import re
import time

DEFAULT_NAMESPACE = 'meshops-traffic-check'
DEFAULT_NAME = 'meshops-echo'
DEFAULT_SERVER_IMAGE = 'registry.k8s.io/e2e-test-images/agnhost:2.53'
DEFAULT_CLIENT_IMAGE = 'registry.k8s.io/e2e-test-images/busybox:1.36.1-1'
SERVER_PORT = 8080
SERVICE_PORT = 80
AFFINITIES = ('none', 'local', 'remote')
PART_OF = 'meshops-traffic-check'
LABELS = {'app.kubernetes.io/managed-by': 'meshops.cilium', 'app.kubernetes.io/part-of': PART_OF}
SELECTOR = 'app.kubernetes.io/part-of=%s' % PART_OF
ANSWER = 'meshops-answer'
ERROR = 'meshops-error'
# A Deployment's pods are named <deployment>-<replicaset hash>-<5 chars>; pod names are cut at
# 63 characters, so the Deployment name must leave room for both suffixes.
MAX_DEPLOYMENT_NAME = 47
_DNS_LABEL = re.compile(r'[a-z0-9]([-a-z0-9]*[a-z0-9])?')  # use fullmatch


# ---------------------------------------------------------------------------
# Names and validation
# ---------------------------------------------------------------------------

def deployment_name(name, cluster):
    return '%s-%s' % (name, cluster)


def validate(name, namespace, cluster, clusters=None, affinity='none', requests=1, replicas=1):
    """Every problem with the inputs, as sentences naming the field and the fix."""
    errors = []
    for field, value, limit in (('name', name, 63), ('namespace', namespace, 63), ('cluster_name', cluster, 63)):
        if not value or len(value) > limit or not _DNS_LABEL.fullmatch(value):
            errors.append('%s %r is not a DNS label (lowercase letters, digits and "-", at most %d '
                          'characters, starting and ending with a letter or digit)' % (field, value, limit))
    for c in clusters or []:
        if not c or not _DNS_LABEL.fullmatch(c):
            errors.append('clusters: %r is not a DNS label; use the cluster names given as cluster_name' % (c,))
    if clusters is not None and cluster not in clusters:
        errors.append('clusters must include this cluster (%s): list every cluster expected to answer' % cluster)
    if not errors and len(deployment_name(name, cluster)) > MAX_DEPLOYMENT_NAME:
        errors.append('the Deployment name %s is longer than %d characters (pod names would be cut and the '
                      'answering cluster could not be read): shorten name' % (
                          deployment_name(name, cluster), MAX_DEPLOYMENT_NAME))
    if affinity not in AFFINITIES:
        errors.append('affinity must be one of %s (service.cilium.io/affinity), got %r'
                      % (', '.join(AFFINITIES), affinity))
    if requests < 1:
        errors.append('requests must be at least 1')
    if replicas < 1:
        errors.append('replicas must be at least 1')
    return errors


_LABEL_NAME = re.compile(r'[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?')  # use fullmatch
_LABEL_PREFIX = re.compile(r'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')


def validate_node_selector(selector):
    """None, or a sentence naming the node_selector entry that is not a Kubernetes label."""
    for key, value in (selector or {}).items():
        prefix, dummy, name = str(key).rpartition('/')
        if not _LABEL_NAME.fullmatch(name) or (prefix and (len(prefix) > 253 or not _LABEL_PREFIX.fullmatch(prefix))):
            return ('node_selector: %r is not a label key ([prefix/]name, name at most 63 letters, digits, "-", '
                    '"_" or ".")' % (key,))
        if not isinstance(value, str) or (value and not _LABEL_NAME.fullmatch(value)):
            return ('node_selector: the value of %s must be a label value (a string of at most 63 letters, '
                    'digits, "-", "_" or "."; quote true/false and numbers), got %r' % (key, value))
    return None


# ---------------------------------------------------------------------------
# Objects
# ---------------------------------------------------------------------------

def _meta(name, namespace=None, labels=None, annotations=None):
    meta = {'name': name, 'labels': dict(LABELS, **(labels or {}))}
    if namespace:
        meta['namespace'] = namespace
    if annotations:
        meta['annotations'] = dict(annotations)
    return meta


def render_namespace(namespace):
    return {'apiVersion': 'v1', 'kind': 'Namespace', 'metadata': _meta(namespace)}


def service_annotations(affinity='none'):
    """A global, shared Service (cilium-facts section 8)."""
    return {'service.cilium.io/global': 'true', 'service.cilium.io/shared': 'true',
            'service.cilium.io/affinity': affinity}


def render_service(name, namespace, affinity='none'):
    return {
        'apiVersion': 'v1', 'kind': 'Service',
        'metadata': _meta(name, namespace, annotations=service_annotations(affinity)),
        'spec': {'type': 'ClusterIP', 'selector': {'app.kubernetes.io/name': name},
                 'ports': [{'name': 'http', 'port': SERVICE_PORT, 'targetPort': SERVER_PORT,
                            'protocol': 'TCP'}]},
    }


def _pod_placement(spec, node_selector):
    """``spec`` with the pods' nodeSelector (where the check's pods may run), when one is given."""
    if node_selector:
        spec['nodeSelector'] = dict(node_selector)
    return spec


def render_deployment(name, namespace, cluster, image=DEFAULT_SERVER_IMAGE, replicas=1, node_selector=None):
    labels = {'app.kubernetes.io/name': name, 'meshops.io/cluster': cluster}
    return {
        'apiVersion': 'apps/v1', 'kind': 'Deployment',
        'metadata': _meta(deployment_name(name, cluster), namespace, labels=labels),
        'spec': {
            'replicas': replicas,
            'selector': {'matchLabels': {'app.kubernetes.io/name': name, 'meshops.io/cluster': cluster}},
            'template': {
                'metadata': {'labels': dict(LABELS, **labels)},
                'spec': _pod_placement({'containers': [{
                    'name': 'echo', 'image': image,
                    'args': ['netexec', '--http-port=%d' % SERVER_PORT],
                    'ports': [{'name': 'http', 'containerPort': SERVER_PORT, 'protocol': 'TCP'}],
                    'readinessProbe': {'httpGet': {'path': '/hostname', 'port': SERVER_PORT}},
                }]}, node_selector),
            },
        },
    }


def client_script(name, namespace, requests, timeout):
    url = 'http://%s.%s.svc:%d/hostname' % (name, namespace, SERVICE_PORT)
    return ('i=0; while [ "$i" -lt %d ]; do i=$((i+1)); '
            'if out=$(wget -q -T %d -O - %s 2>&1); then echo "%s $out"; '
            'else echo "%s $out" | tr "\\n" " "; echo; fi; done'
            % (requests, timeout, url, ANSWER, ERROR))


def client_job_name(name):
    return '%s-client' % name


def render_client_job(name, namespace, image=DEFAULT_CLIENT_IMAGE, requests=30, timeout=2, node_selector=None):
    deadline = requests * (timeout + 1) + 60
    return {
        'apiVersion': 'batch/v1', 'kind': 'Job',
        'metadata': _meta(client_job_name(name), namespace),
        'spec': {
            'backoffLimit': 0,
            'activeDeadlineSeconds': deadline,
            'template': {
                'metadata': {'labels': dict(LABELS, **{'app.kubernetes.io/name': client_job_name(name)})},
                'spec': _pod_placement({'restartPolicy': 'Never', 'containers': [{
                    'name': 'client', 'image': image,
                    'command': ['sh', '-c', client_script(name, namespace, requests, timeout)],
                }]}, node_selector),
            },
        },
    }


def server_objects(name, namespace, cluster, image=DEFAULT_SERVER_IMAGE, replicas=1, affinity='none',
                   node_selector=None):
    return [render_namespace(namespace), render_deployment(name, namespace, cluster, image, replicas, node_selector),
            render_service(name, namespace, affinity)]


def subset_differs(desired, live):
    """Whether ``live`` lacks any value of ``desired`` (server defaults are ignored)."""
    if isinstance(desired, dict):
        if not isinstance(live, dict):
            return True
        return any(subset_differs(v, live.get(k)) for k, v in desired.items())
    if isinstance(desired, list):
        if not isinstance(live, list) or len(live) != len(desired):
            return True
        return any(subset_differs(d, l) for d, l in zip(desired, live))
    if isinstance(desired, int) and isinstance(live, str):
        return str(desired) != live
    return desired != live


# ---------------------------------------------------------------------------
# Answers
# ---------------------------------------------------------------------------

def cluster_of_pod(pod, name, clusters):
    """The cluster whose echo Deployment runs pod ``pod``, or None.

    Pod names are ``<name>-<cluster>-<replicaset hash>-<suffix>``; the longest matching
    cluster name wins (``mesh-1`` vs ``mesh-10``).
    """
    for c in sorted(clusters, key=len, reverse=True):
        prefix = deployment_name(name, c) + '-'
        if pod.startswith(prefix) and re.fullmatch(r'[a-z0-9]+-[a-z0-9]+', pod[len(prefix):]):
            return c
    return None


def parse_answers(log, name, clusters):
    """Client log -> ``{requests, answers: {cluster: n}, unknown: {pod: n}, errors, error_samples}``."""
    out = {'requests': 0, 'answers': dict((c, 0) for c in clusters), 'unknown': {}, 'errors': 0,
           'error_samples': []}
    for line in (log or '').splitlines():
        line = line.strip()
        if line.startswith(ANSWER + ' '):
            out['requests'] += 1
            pod = line[len(ANSWER) + 1:].strip()
            c = cluster_of_pod(pod, name, clusters)
            if c is None:
                out['unknown'][pod] = out['unknown'].get(pod, 0) + 1
            else:
                out['answers'][c] += 1
        elif line.startswith(ERROR):
            out['requests'] += 1
            out['errors'] += 1
            sample = ' '.join(line[len(ERROR):].split())[:200]
            if sample and sample not in out['error_samples'] and len(out['error_samples']) < 3:
                out['error_samples'].append(sample)
    return out


def summarize(cluster, parsed, expected, log_error=None):
    """The check's result for the client in ``cluster``."""
    answered = sorted(c for c in expected if parsed['answers'].get(c))
    missing = sorted(c for c in expected if not parsed['answers'].get(c))
    result = {
        'client_cluster': cluster,
        'requests': parsed['requests'],
        'answers': dict((c, parsed['answers'].get(c, 0)) for c in sorted(expected)),
        'answered': answered,
        'missing': missing,
        'unknown_answers': parsed['unknown'],
        'errors': parsed['errors'],
        'error_samples': parsed['error_samples'],
        'ok': not missing and log_error is None,
    }
    result['message'] = message(cluster, result, log_error)
    return result


def message(cluster, result, log_error=None):
    if log_error is not None:
        return ('%s: no answer could be read, so none of %s answered: the client\'s log could not be read '
                '(%s)' % (cluster, ', '.join(result['missing']) or 'the clusters', log_error))
    parts = ['%s: %d requests' % (cluster, result['requests'])]
    if result['answered']:
        parts.append('answers from %s' % ', '.join('%s (%d)' % (c, result['answers'][c])
                                                   for c in result['answered']))
    if result['missing']:
        parts.append('NO answer from %s' % ', '.join(result['missing']))
    if result['errors']:
        parts.append('%d failed requests (%s)' % (result['errors'], '; '.join(result['error_samples'])))
    if result['unknown_answers']:
        parts.append('answers from pods not matching any cluster: %s' % ', '.join(sorted(result['unknown_answers'])))
    return '; '.join(parts)


# ---------------------------------------------------------------------------
# Live cluster
# ---------------------------------------------------------------------------

def _apis(cluster):
    from kubernetes import client as k8s_client
    return k8s_client.BatchV1Api(cluster.api_client)


def _reader_writer(cluster, kind):
    core, apps = cluster.core, cluster.apps
    if kind == 'Namespace':
        return (lambda o, **kw: core.read_namespace(o['metadata']['name'], **kw),
                core.create_namespace,
                lambda o, **kw: core.patch_namespace(o['metadata']['name'], o, **kw))
    if kind == 'Service':
        return (lambda o, **kw: core.read_namespaced_service(o['metadata']['name'], o['metadata']['namespace'], **kw),
                lambda o, **kw: core.create_namespaced_service(o['metadata']['namespace'], o, **kw),
                lambda o, **kw: core.patch_namespaced_service(o['metadata']['name'], o['metadata']['namespace'], o, **kw))
    if kind == 'Deployment':
        return (lambda o, **kw: apps.read_namespaced_deployment(o['metadata']['name'], o['metadata']['namespace'], **kw),
                lambda o, **kw: apps.create_namespaced_deployment(o['metadata']['namespace'], o, **kw),
                lambda o, **kw: apps.patch_namespaced_deployment(o['metadata']['name'], o['metadata']['namespace'], o, **kw))
    raise ValueError(kind)


def ref(obj):
    meta = obj['metadata']
    return '%s %s' % (obj['kind'], '/'.join(x for x in (meta.get('namespace'), meta['name']) if x))


def ensure(cluster, objects, check_mode):
    """Create or patch ``objects``; ``(changes, before, after)`` (changes: ``[(ref, action)]``)."""
    changes, before, after = [], {}, {}
    for obj in objects:
        read, create, patch = _reader_writer(cluster, obj['kind'])
        live = cluster.to_dict(cluster.call('read %s' % ref(obj), read, obj, missing_ok=True))
        if live is None:
            changes.append((ref(obj), 'create'))
            after[ref(obj)] = obj
            if not check_mode:
                cluster.call('create %s' % ref(obj), create, obj)
        elif subset_differs(obj, live):
            changes.append((ref(obj), 'update'))
            before[ref(obj)] = dict((k, live.get(k)) for k in obj if k in ('metadata', 'spec'))
            after[ref(obj)] = obj
            if not check_mode:
                cluster.call('update %s' % ref(obj), patch, obj)
    return changes, before, after


def wait_deployment(cluster, namespace, name, timeout):
    deadline = time.time() + timeout
    while True:
        d = cluster.read_deployment(namespace, name, missing_ok=True) or {}
        want = (d.get('spec') or {}).get('replicas') or 1
        if ((d.get('status') or {}).get('readyReplicas') or 0) >= want:
            return True
        if time.time() > deadline:
            return False
        time.sleep(1)


def run_client(cluster, job, timeout):
    """Run the client Job, return ``(log, error)``; the Job and its pods are deleted after."""
    batch = _apis(cluster)
    ns, jname = job['metadata']['namespace'], job['metadata']['name']
    _delete_job(cluster, batch, ns, jname, wait=True, timeout=timeout)
    cluster.call('create Job %s/%s' % (ns, jname), batch.create_namespaced_job, ns, job)
    try:
        deadline = time.time() + timeout
        while True:
            st = cluster.to_dict(cluster.call('read Job %s/%s' % (ns, jname), batch.read_namespaced_job_status,
                                              jname, ns)).get('status') or {}
            if st.get('succeeded') or st.get('failed'):
                break
            if time.time() > deadline:
                return None, 'the client Job %s/%s did not finish within %ss' % (ns, jname, timeout)
            time.sleep(1)
        pods = cluster.call('list the client pods', cluster.core.list_namespaced_pod, ns,
                            label_selector='job-name=%s' % jname).items or []
        if not pods:
            return None, 'the client Job %s/%s has no pod' % (ns, jname)
        try:
            # the raw body: the client turns a log served as other than text/plain into the repr
            # of its bytes ("b'...'")
            resp = cluster.core.read_namespaced_pod_log(pods[0].metadata.name, ns, container='client',
                                                        _request_timeout=cluster.timeouts, _preload_content=False)
            log = resp.data.decode('utf-8', 'replace')
        except Exception as e:
            from ansible_collections.meshops.cilium.plugins.module_utils.cluster import translate_error
            return None, ' '.join(translate_error(e, action='read the log of pod %s/%s' % (
                ns, pods[0].metadata.name)).split())[:300]
        return log, None
    finally:
        _delete_job(cluster, batch, ns, jname, wait=False, timeout=timeout)


def _delete_job(cluster, batch, ns, jname, wait, timeout):
    gone = cluster.call('delete Job %s/%s' % (ns, jname), batch.delete_namespaced_job, jname, ns,
                        propagation_policy='Foreground', missing_ok=True) is None
    if wait and not gone:
        deadline = time.time() + timeout
        while cluster.call('read Job %s/%s' % (ns, jname), batch.read_namespaced_job, jname, ns,
                           missing_ok=True) is not None and time.time() < deadline:
            time.sleep(1)


# Kinds the check creates inside its namespace, as (kind, list function, delete function names).
_OWN_KINDS = (('Deployment', 'apps', 'list_namespaced_deployment', 'delete_namespaced_deployment'),
              ('Service', 'core', 'list_namespaced_service', 'delete_namespaced_service'),
              ('Job', 'batch', 'list_namespaced_job', 'delete_namespaced_job'))


def provided_namespace(cluster, namespace):
    """With ``create_namespace=false``: the Namespace must exist (created with the check's Role,
    deploy/rbac/meshops-automation-traffic-check.yaml); it is never written. None or the reason."""
    live = cluster.call('read Namespace %s' % namespace, cluster.core.read_namespace, namespace, missing_ok=True)
    if live is None:
        return ('Namespace %s does not exist: with create_namespace=false it is provided by an administrator '
                '(kubectl apply -f deploy/rbac/meshops-automation-traffic-check.yaml creates it with the '
                "check's Role); create it, or set create_namespace=true" % namespace)
    if live.status is not None and live.status.phase == 'Terminating':
        return 'Namespace %s is being deleted; wait until it is gone and provide it again' % namespace
    return None


def _own_objects(cluster, namespace):
    """``[(kind, name, delete function)]`` of the check's objects (by label) in ``namespace``."""
    apis = {'core': cluster.core, 'apps': cluster.apps, 'batch': _apis(cluster)}
    found = []
    for kind, api, lister, deleter in _OWN_KINDS:
        items = cluster.call('list %ss in namespace %s' % (kind, namespace), getattr(apis[api], lister), namespace,
                             label_selector=SELECTOR).items or []
        found.extend((kind, o.metadata.name, getattr(apis[api], deleter)) for o in items)
    return found


def remove_objects(cluster, namespace, check_mode, wait, timeout):
    """Delete the check's objects in a provided Namespace, never the Namespace; the refs deleted."""
    live = cluster.call('read Namespace %s' % namespace, cluster.core.read_namespace, namespace, missing_ok=True)
    if live is None:
        return []
    found = _own_objects(cluster, namespace)
    refs = ['%s %s/%s' % (kind, namespace, name) for kind, name, dummy in found]
    if check_mode or not found:
        return refs
    for kind, name, delete in found:
        # the answer (the deleted object or a Status, depending on the kind) is not needed
        cluster.call('delete %s %s/%s' % (kind, namespace, name), delete, name, namespace,
                     propagation_policy='Foreground' if kind == 'Job' else 'Background', missing_ok=True,
                     _preload_content=False)
    if wait:
        deadline = time.time() + timeout
        while _own_objects(cluster, namespace):
            if time.time() > deadline:
                from ansible_collections.meshops.cilium.plugins.module_utils.cluster import ClusterError
                raise ClusterError('the objects of the check in Namespace %s are still being deleted after %ss'
                                   % (namespace, timeout), cluster=cluster.name)
            time.sleep(1)
    return refs


def remove(cluster, namespace, check_mode, wait, timeout):
    """Delete the check's Namespace (everything in it goes with it); ``changed``."""
    live = cluster.call('read Namespace %s' % namespace, cluster.core.read_namespace, namespace, missing_ok=True)
    if live is None:
        return False
    labels = (live.metadata.labels or {})
    if labels.get('app.kubernetes.io/part-of') != PART_OF:
        from ansible_collections.meshops.cilium.plugins.module_utils.cluster import ClusterError
        raise ClusterError('Namespace %s exists but was not created by this check (label '
                           'app.kubernetes.io/part-of=%s missing): not deleting it; set namespace to the '
                           "check's own namespace" % (namespace, PART_OF), cluster=cluster.name)
    if check_mode:
        return True
    cluster.call('delete Namespace %s' % namespace, cluster.core.delete_namespace, namespace, missing_ok=True)
    if wait:
        deadline = time.time() + timeout
        while cluster.call('read Namespace %s' % namespace, cluster.core.read_namespace, namespace,
                           missing_ok=True) is not None:
            if time.time() > deadline:
                from ansible_collections.meshops.cilium.plugins.module_utils.cluster import ClusterError
                raise ClusterError('Namespace %s still terminating after %ss' % (namespace, timeout),
                                   cluster=cluster.name)
            time.sleep(1)
    return True
