# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0
"""Global Services and cross-cluster policies of a ClusterMesh (pure: no cluster access).

* ``plan_services(members, specs)``: every cluster's desired Service objects, or the problems
  (each names the cluster, the Service and the field) that stop the whole plan;
* ``policy_cluster_names(policy)`` / ``policy_problems(policy, members)``: the cluster names a
  CiliumNetworkPolicy or CiliumClusterwideNetworkPolicy selects (label
  ``io.cilium.k8s.policy.cluster``) and those outside the mesh (a rule naming one matches nothing);
* ``service_plan`` / ``policy_plan``: what a module must write to one cluster (create, update,
  delete or nothing), comparing only the fields this collection owns.

Ownership: every object the collection writes carries ``OWNER_LABEL: OWNER_VALUE``
(``app.kubernetes.io/managed-by: meshops.cilium``). An existing object without it is foreign and is
neither changed nor deleted unless the caller forces it.

Annotations (Cilium 1.17 to 1.20): ``service.cilium.io/global: "true"``, ``service.cilium.io/shared``
(``"true"``/``"false"``), ``service.cilium.io/affinity`` (``local``, ``remote``, ``none``).
"""

import copy

from ansible_collections.meshops.cilium.plugins.module_utils.errors import MeshopsValueError

OWNER_LABEL = 'app.kubernetes.io/managed-by'
OWNER_VALUE = 'meshops.cilium'
GLOBAL_ANNOTATION = 'service.cilium.io/global'
SHARED_ANNOTATION = 'service.cilium.io/shared'
AFFINITY_ANNOTATION = 'service.cilium.io/affinity'
OWNED_ANNOTATIONS = (GLOBAL_ANNOTATION, SHARED_ANNOTATION, AFFINITY_ANNOTATION)
AFFINITIES = ('local', 'remote', 'none')
SERVICE_TYPES = ('ClusterIP', 'NodePort', 'LoadBalancer')
PROTOCOLS = ('TCP', 'UDP', 'SCTP')
CLUSTER_LABEL = 'io.cilium.k8s.policy.cluster'
# Cilium label sources a selector key may carry ("k8s:io.cilium.k8s.policy.cluster").
LABEL_SOURCES = ('k8s', 'any')
POLICY_API_VERSION = 'cilium.io/v2'
POLICY_KINDS = {'CiliumNetworkPolicy': 'ciliumnetworkpolicies',
                'CiliumClusterwideNetworkPolicy': 'ciliumclusterwidenetworkpolicies'}


class ServicesError(MeshopsValueError):
    """Bad service or policy input, or a refusal; the message names the cluster, object and field."""


# -- values -------------------------------------------------------------------
def shared_value(value):
    """``'true'``/``'false'`` for a bool or the strings ``true``/``false`` (any case); None otherwise."""
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, str) and value.strip().lower() in ('true', 'false'):
        return value.strip().lower()
    return None


def _per_cluster(value, cluster):
    """A per-cluster option: a dict ``{cluster: value}`` or one value for every cluster."""
    if isinstance(value, dict):
        return value.get(cluster)
    return value


def _ports(spec, where):
    """The normalized ports of a spec, and the problems with them."""
    problems = []
    ports = spec.get('ports')
    if not isinstance(ports, list) or not ports:
        return [], ['%s: field ports must be a non-empty list of {port, name, protocol, targetPort}' % where]
    out = []
    for i, p in enumerate(ports):
        field = 'ports[%d]' % i
        if isinstance(p, int) and not isinstance(p, bool):
            p = {'port': p}
        if not isinstance(p, dict):
            problems.append('%s: field %s must be a port number or a dict with port, got %r' % (where, field, p))
            continue
        port = p.get('port')
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            problems.append('%s: field %s.port must be 1..65535, got %r' % (where, field, port))
            continue
        protocol = p.get('protocol', 'TCP')
        if protocol not in PROTOCOLS:
            problems.append('%s: field %s.protocol must be one of %s, got %r' % (
                where, field, ', '.join(PROTOCOLS), protocol))
            continue
        entry = {'port': port, 'protocol': protocol, 'targetPort': p.get('targetPort', port)}
        if p.get('name') is not None:
            entry['name'] = str(p['name'])
        if p.get('nodePort') is not None:
            entry['nodePort'] = p['nodePort']
        out.append(entry)
    if len(out) > 1 and any('name' not in e for e in out):
        problems.append('%s: field ports: every port needs a name when there are several' % where)
    keys = [(e['port'], e['protocol']) for e in out]
    if len(set(keys)) != len(keys):
        problems.append('%s: field ports lists the same port and protocol twice' % where)
    return out, problems


def service_problems(spec, cluster):
    """Problems of one Service spec on ``cluster`` (affinity, shared, type, ports, selector), and its
    normalized ports."""
    name = spec.get('name') if isinstance(spec, dict) else None
    namespace = (spec.get('namespace') or 'default') if isinstance(spec, dict) else 'default'
    where = 'cluster %s, Service %s/%s' % (cluster, namespace, name)
    if not isinstance(spec, dict) or not isinstance(name, str) or not name:
        return [], ['cluster %s: a global Service needs a name (field name), got %r' % (cluster, spec)]
    problems = []
    affinity = _per_cluster(spec.get('affinity'), cluster)
    if affinity is not None and affinity not in AFFINITIES:
        problems.append('%s: field affinity must be one of %s, got %r (Cilium treats any other value as an '
                        'error)' % (where, ', '.join(AFFINITIES), affinity))
    shared = _per_cluster(spec.get('shared'), cluster)
    if shared is not None and shared_value(shared) is None:
        problems.append('%s: field shared must be true or false, got %r' % (where, shared))
    stype = spec.get('type', 'ClusterIP')
    if stype not in SERVICE_TYPES:
        problems.append('%s: field type must be one of %s, got %r' % (where, ', '.join(SERVICE_TYPES), stype))
    selector = spec.get('selector')
    if selector is not None and (not isinstance(selector, dict)
                                 or not all(isinstance(v, str) for v in selector.values())):
        problems.append('%s: field selector must be a dict of label strings, got %r' % (where, selector))
    ports, port_problems = _ports(spec, where)
    return ports, problems + port_problems


def service_object(spec, cluster, ports=None):
    """The desired Service dict of ``spec`` on ``cluster`` (valid input assumed, see service_problems)."""
    if ports is None:
        ports, dummy = _ports(spec, cluster)
    annotations = {GLOBAL_ANNOTATION: 'true'}
    shared = _per_cluster(spec.get('shared'), cluster)
    if shared is not None:
        annotations[SHARED_ANNOTATION] = shared_value(shared)
    affinity = _per_cluster(spec.get('affinity'), cluster)
    if affinity is not None:
        annotations[AFFINITY_ANNOTATION] = affinity
    svc_spec = {'type': spec.get('type', 'ClusterIP'), 'ports': copy.deepcopy(ports)}
    if spec.get('selector'):
        svc_spec['selector'] = dict(spec['selector'])
    return {'apiVersion': 'v1', 'kind': 'Service',
            'metadata': {'name': spec['name'], 'namespace': spec.get('namespace') or 'default',
                         'labels': {OWNER_LABEL: OWNER_VALUE}, 'annotations': annotations},
            'spec': svc_spec}


def _port_key(ports):
    return sorted((p['port'], p['protocol'], str(p.get('name', '')), str(p['targetPort'])) for p in ports)


# -- the mesh-wide plan --------------------------------------------------------
def plan_services(members, specs):
    """``(plan, problems, warnings)``.

    ``plan``: ``{cluster: [Service dict, ...]}`` for every member (an empty list for a member with none);
    ``problems``: every reason to write nothing (empty when the plan may be applied), each naming the
    cluster, the Service and the field; ``warnings``: legal but probably unintended set-ups.

    A spec: ``name``, ``namespace`` (default ``default``), ``ports``, ``selector``, ``type``
    (``ClusterIP``), ``clusters`` (default every member), ``affinity`` and ``shared``, each either one
    value or a dict ``{cluster: value}``.
    """
    members = list(members or [])
    problems, warnings = [], []
    plan = dict((m, []) for m in members)
    if not members:
        return plan, ['the mesh has no members: set the member list (cluster names of the mesh)'], warnings
    if not isinstance(specs, list):
        return plan, ['the global Services must be a list, got %s' % type(specs).__name__], warnings
    placed = {}  # (namespace, name) -> {cluster: (ports key, type)}
    by_name = {}  # name -> {namespace: [clusters]}
    for index, spec in enumerate(specs):
        if not isinstance(spec, dict):
            problems.append('global Service #%d: must be a dict with name, namespace, ports, got %r' % (index, spec))
            continue
        name, namespace = spec.get('name'), spec.get('namespace') or 'default'
        clusters = spec.get('clusters', members)
        if not isinstance(clusters, list) or not clusters:
            problems.append('Service %s/%s: field clusters must be a non-empty list of cluster names, got %r'
                            % (namespace, name, clusters))
            continue
        for field in ('affinity', 'shared'):
            for c in (spec.get(field) if isinstance(spec.get(field), dict) else {}):
                if c not in clusters:
                    problems.append('cluster %s, Service %s/%s: field %s names a cluster the Service is not '
                                    'placed on (clusters: %s)' % (c, namespace, name, field, ', '.join(map(str, clusters))))
        for cluster in clusters:
            if cluster not in plan:
                problems.append('cluster %s, Service %s/%s: field clusters names a cluster that is not in the mesh '
                                '(members: %s)' % (cluster, namespace, name, ', '.join(members)))
                continue
            ports, found = service_problems(spec, cluster)
            if found:
                problems.extend(found)
                continue
            where = placed.setdefault((namespace, name), {})
            if cluster in where:
                problems.append('cluster %s, Service %s/%s: defined twice for this cluster (field clusters of two '
                                'entries)' % (cluster, namespace, name))
                continue
            shared = _per_cluster(spec.get('shared'), cluster)
            where[cluster] = (_port_key(ports), spec.get('type', 'ClusterIP'),
                              'true' if shared is None else shared_value(shared),
                              _per_cluster(spec.get('affinity'), cluster))
            by_name.setdefault(name, {}).setdefault(namespace, []).append(cluster)
            plan[cluster].append(service_object(spec, cluster, ports))
    for (namespace, name), where in sorted(placed.items()):
        first = sorted(where)[0]
        for cluster in sorted(where)[1:]:
            if where[cluster][0] != where[first][0]:
                problems.append('cluster %s, Service %s/%s: field ports differs from cluster %s (Cilium merges the '
                                'backends of a global Service per port: give it the same ports everywhere)'
                                % (cluster, namespace, name, first))
            if where[cluster][1] != where[first][1]:
                warnings.append('cluster %s, Service %s/%s: field type %s differs from %s on cluster %s'
                                % (cluster, namespace, name, where[cluster][1], where[first][1], first))
        if len(where) == 1:
            warnings.append('cluster %s, Service %s/%s: field clusters places this global Service on one cluster only: '
                            'it has no backends to share with or take from another cluster' % (first, namespace, name))
        elif all(v[2] == 'false' for v in where.values()):
            warnings.append('Service %s/%s: field shared is false on every cluster (%s): no cluster exports '
                            'backends, so none has remote ones' % (namespace, name, ', '.join(sorted(where))))
        for cluster, v in sorted(where.items()):
            if v[3] == 'remote' and all(w[2] == 'false' for c, w in where.items() if c != cluster):
                warnings.append('cluster %s, Service %s/%s: field affinity is remote but no other cluster shares '
                                'its backends (shared false)' % (cluster, namespace, name))
    for name, namespaces in sorted(by_name.items()):
        if len(namespaces) > 1:
            text = '; '.join('namespace %s on %s' % (ns, ', '.join(sorted(cs))) for ns, cs in sorted(namespaces.items()))
            spread = [set(cs) for cs in namespaces.values()]
            if all(not (a & b) for i, a in enumerate(spread) for b in spread[i + 1:]):
                problems.append('Service %s: field namespace differs across clusters (%s). Cilium merges only '
                                'Services with the same name AND namespace: use one namespace' % (name, text))
    return plan, problems, warnings


# -- policies ------------------------------------------------------------------
def _cluster_key(key):
    """Whether a selector key is the cluster label, bare or with a label source prefix."""
    if not isinstance(key, str):
        return False
    if key == CLUSTER_LABEL:
        return True
    source, sep, rest = key.partition(':')
    return bool(sep) and source in LABEL_SOURCES and rest == CLUSTER_LABEL


def policy_cluster_names(policy):
    """``[(path, name), ...]``: every cluster name a policy selects through label
    ``io.cilium.k8s.policy.cluster`` (matchLabels, and matchExpressions with In or NotIn), anywhere in
    ``spec``/``specs``; ``path`` says where (``spec.ingress[0].fromEndpoints[0].matchLabels``)."""
    found = []

    def walk(node, path):
        if isinstance(node, dict):
            labels = node.get('matchLabels')
            if isinstance(labels, dict):
                for k, v in labels.items():
                    if _cluster_key(k):
                        found.append(('%s.matchLabels' % path, str(v)))
            exprs = node.get('matchExpressions')
            if isinstance(exprs, list):
                for i, e in enumerate(exprs):
                    if isinstance(e, dict) and _cluster_key(e.get('key')) and e.get('operator') in ('In', 'NotIn'):
                        for v in e.get('values') or []:
                            found.append(('%s.matchExpressions[%d]' % (path, i), str(v)))
            for k, v in node.items():
                walk(v, '%s.%s' % (path, k) if path else str(k))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, '%s[%d]' % (path, i))

    body = policy if isinstance(policy, dict) else {}
    for key in ('spec', 'specs'):
        if key in body:
            walk(body[key], key)
    return found


def policy_id(policy):
    """``'CiliumNetworkPolicy ns/name'`` for messages."""
    body = policy if isinstance(policy, dict) else {}
    meta = body.get('metadata') or {}
    kind = body.get('kind') or 'policy'
    if kind == 'CiliumClusterwideNetworkPolicy':
        return '%s %s' % (kind, meta.get('name'))
    return '%s %s/%s' % (kind, meta.get('namespace') or 'default', meta.get('name'))


def policy_shape_problems(policy, cluster):
    """Problems of the policy's shape (kind, apiVersion, name, spec), each naming the cluster and field."""
    where = 'cluster %s, %s' % (cluster, policy_id(policy))
    if not isinstance(policy, dict):
        return ['cluster %s: a policy must be a dict (a CiliumNetworkPolicy or CiliumClusterwideNetworkPolicy), '
                'got %r' % (cluster, policy)]
    problems = []
    if policy.get('kind') not in POLICY_KINDS:
        problems.append('%s: field kind must be one of %s, got %r' % (where, ', '.join(POLICY_KINDS),
                                                                      policy.get('kind')))
    if policy.get('apiVersion', POLICY_API_VERSION) != POLICY_API_VERSION:
        problems.append('%s: field apiVersion must be %s, got %r' % (where, POLICY_API_VERSION, policy.get('apiVersion')))
    if not isinstance(policy.get('metadata'), dict) or not policy['metadata'].get('name'):
        problems.append('%s: field metadata.name is required' % where)
    if not isinstance(policy.get('spec'), dict) and not isinstance(policy.get('specs'), list):
        problems.append('%s: field spec (a dict) or specs (a list) is required' % where)
    return problems


def policy_problems(policy, members, cluster):
    """Problems of one policy applied on ``cluster``: its shape, and every cluster name it selects that
    is not a member (a rule naming one matches nothing, silently). Second value: those unknown names'
    messages apart, so a caller can turn them into warnings."""
    shape = policy_shape_problems(policy, cluster)
    unknown = []
    if members is not None:
        for path, name in policy_cluster_names(policy):
            if name not in members:
                unknown.append('cluster %s, %s: field %s selects cluster %s, which is not in the mesh (members: %s); '
                               'the rule matches nothing' % (cluster, policy_id(policy), path, name,
                                                             ', '.join(members)))
    return shape, unknown


def plan_policies(members, specs):
    """``(plan, problems, unknown)``: ``{cluster: [policy dict, ...]}``, every problem of the input, and
    apart the rules naming clusters outside the mesh. A spec: ``definition`` (the policy) and ``clusters``
    (default every member)."""
    members = list(members or [])
    plan = dict((m, []) for m in members)
    problems, unknown = [], []
    if not isinstance(specs, list):
        return plan, ['the cluster policies must be a list, got %s' % type(specs).__name__], []
    for index, spec in enumerate(specs):
        definition = spec.get('definition') if isinstance(spec, dict) else None
        if definition is None:
            problems.append('cluster policy #%d: field definition (the policy) is required' % index)
            continue
        clusters = spec.get('clusters', members)
        if not isinstance(clusters, list) or not clusters:
            problems.append('%s: field clusters must be a non-empty list of cluster names, got %r'
                            % (policy_id(definition), clusters))
            continue
        for cluster in clusters:
            if cluster not in plan:
                problems.append('cluster %s, %s: field clusters names a cluster that is not in the mesh (members: %s)'
                                % (cluster, policy_id(definition), ', '.join(members)))
                continue
            shape, names = policy_problems(definition, members, cluster)
            problems.extend(shape)
            unknown.extend(names)
            if not shape:
                plan[cluster].append(definition)
    return plan, problems, unknown


# -- one cluster: what to write ------------------------------------------------
def owned(obj):
    return ((obj or {}).get('metadata') or {}).get('labels', {}).get(OWNER_LABEL) == OWNER_VALUE


def _comparable_ports(ports, wanted):
    """The ports of a live Service reduced to what ``wanted`` sets (nodePort only where wanted sets it)."""
    sets_node = dict(((p['port'], p['protocol']), 'nodePort' in p) for p in wanted)
    out = []
    for p in ports or []:
        entry = {'port': p.get('port'), 'protocol': p.get('protocol', 'TCP'),
                 'targetPort': p.get('targetPort', p.get('port'))}
        if p.get('name') is not None:
            entry['name'] = p['name']
        if sets_node.get((entry['port'], entry['protocol'])) and p.get('nodePort') is not None:
            entry['nodePort'] = p['nodePort']
        out.append(entry)
    return sorted(out, key=lambda e: (e['port'], e['protocol']))


def owned_view(obj, wanted):
    """The fields of Service ``obj`` this collection owns, in the form of ``wanted`` (for diff and compare)."""
    if obj is None:
        return None
    meta = obj.get('metadata') or {}
    spec = obj.get('spec') or {}
    annotations = meta.get('annotations') or {}
    view = {'metadata': {'name': meta.get('name'), 'namespace': meta.get('namespace'),
                         'labels': {OWNER_LABEL: (meta.get('labels') or {}).get(OWNER_LABEL)},
                         'annotations': dict((k, annotations[k]) for k in OWNED_ANNOTATIONS if k in annotations)},
            'spec': {'type': spec.get('type', 'ClusterIP'),
                     'ports': _comparable_ports(spec.get('ports'), wanted['spec']['ports'])}}
    if spec.get('selector'):
        view['spec']['selector'] = spec['selector']
    return view


def _normalized(wanted):
    out = copy.deepcopy(wanted)
    out.pop('apiVersion', None)
    out.pop('kind', None)
    out['spec']['ports'] = sorted(out['spec']['ports'], key=lambda e: (e['port'], e['protocol']))
    return out


def service_conflicts(current, wanted):
    """How a live Service differs in type or ports from ``wanted`` (list of str)."""
    view = owned_view(current, wanted)
    norm = _normalized(wanted)
    out = []
    if view['spec']['type'] != norm['spec']['type']:
        out.append('type is %s, wanted %s' % (view['spec']['type'], norm['spec']['type']))
    if view['spec']['ports'] != norm['spec']['ports']:
        out.append('ports are %s, wanted %s' % (_ports_text(view['spec']['ports']), _ports_text(norm['spec']['ports'])))
    return out


def _ports_text(ports):
    return ', '.join('%s/%s' % (p['port'], p['protocol']) + (' (%s)' % p['name'] if p.get('name') else '')
                     for p in ports) or 'none'


def _plan_without_merge(current, wanted, state, before, after):
    """``(action, body, before, after)`` of ``service_plan`` and ``policy_plan`` when no merge into the live
    object is needed (absent, deleted, created, unchanged); None when the live object must be updated."""
    if state == 'absent':
        return ('absent', None, None, None) if current is None else ('deleted', None, before, None)
    if current is None:
        return 'created', copy.deepcopy(wanted), None, after
    if before == after:
        return 'unchanged', None, before, after
    return None


def _live_copy(current):
    """The live object to update: a copy without its status."""
    body = copy.deepcopy(current)
    body.pop('status', None)
    return body


def service_plan(current, wanted, state, force, cluster):
    """``(action, body, before, after)`` for one Service on ``cluster``.

    ``action``: ``created``, ``updated``, ``deleted``, ``unchanged`` or ``absent``; ``body`` the object to
    create or replace (None otherwise). A foreign Service (no ownership label) raises ``ServicesError``
    unless ``force``.
    """
    meta = wanted['metadata']
    where = 'cluster %s, Service %s/%s' % (cluster, meta['namespace'], meta['name'])
    before = owned_view(current, wanted)
    if current is not None and not owned(current) and not force:
        conflicts = service_conflicts(current, wanted) if state == 'present' else []
        raise ServicesError(
            '%s: field metadata.labels: the Service exists and is not managed by this collection (no label %s=%s)%s. '
            'Rename the global Service, remove the existing one, or set force=true to %s it' % (
                where, OWNER_LABEL, OWNER_VALUE, (' and conflicts: %s' % '; '.join(conflicts)) if conflicts else '',
                'take it over and overwrite' if state == 'present' else 'delete'))
    after = _normalized(wanted) if state == 'present' else None
    decided = _plan_without_merge(current, wanted, state, before, after)
    if decided:
        return decided
    body = _live_copy(current)
    body['apiVersion'], body['kind'] = 'v1', 'Service'
    bmeta = body.setdefault('metadata', {})
    bmeta['labels'] = dict(bmeta.get('labels') or {}, **meta['labels'])
    annotations = dict((k, v) for k, v in (bmeta.get('annotations') or {}).items() if k not in OWNED_ANNOTATIONS)
    annotations.update(meta['annotations'])
    bmeta['annotations'] = annotations
    spec = body.setdefault('spec', {})
    old_ports = dict(((p.get('port'), p.get('protocol', 'TCP')), p) for p in spec.get('ports') or [])
    ports = []
    for p in wanted['spec']['ports']:
        p = dict(p)
        old = old_ports.get((p['port'], p['protocol']))
        # keep an allocated nodePort the plan does not set (a new one would break clients)
        if 'nodePort' not in p and old and old.get('nodePort') and wanted['spec']['type'] != 'ClusterIP':
            p['nodePort'] = old['nodePort']
        ports.append(p)
    spec['ports'] = ports
    spec['type'] = wanted['spec']['type']
    if wanted['spec']['type'] == 'ClusterIP':
        spec.pop('externalTrafficPolicy', None)
    if 'selector' in wanted['spec']:
        spec['selector'] = wanted['spec']['selector']
    else:
        spec.pop('selector', None)
    return 'updated', body, before, after


def policy_owned_view(obj, wanted):
    """The fields of policy ``obj`` this collection owns: labels and annotations ``wanted`` sets, spec and specs."""
    if obj is None:
        return None
    meta = obj.get('metadata') or {}
    wmeta = wanted.get('metadata') or {}
    view = {'metadata': {'name': meta.get('name')}}
    if meta.get('namespace'):
        view['metadata']['namespace'] = meta['namespace']
    for key in ('labels', 'annotations'):
        have = meta.get(key) or {}
        view['metadata'][key] = dict((k, have.get(k)) for k in (wmeta.get(key) or {}))
    for key in ('spec', 'specs'):
        if key in obj or key in wanted:
            view[key] = obj.get(key)
    return view


def policy_desired(definition, namespace):
    """The policy to write: ``definition`` with apiVersion, the ownership label and (namespaced kind) the namespace."""
    body = copy.deepcopy(definition)
    body['apiVersion'] = POLICY_API_VERSION
    meta = body.setdefault('metadata', {})
    meta['labels'] = dict(meta.get('labels') or {}, **{OWNER_LABEL: OWNER_VALUE})
    meta.setdefault('annotations', {})
    if body['kind'] == 'CiliumNetworkPolicy':
        meta['namespace'] = meta.get('namespace') or namespace or 'default'
    else:
        meta.pop('namespace', None)
    body.pop('status', None)
    return body


def policy_plan(current, wanted, state, force, cluster):
    """``(action, body, before, after)`` for one policy on ``cluster``, like ``service_plan``."""
    where = 'cluster %s, %s' % (cluster, policy_id(wanted))
    if current is not None and not owned(current) and not force:
        raise ServicesError('%s: field metadata.labels: the policy exists and is not managed by this collection (no '
                            'label %s=%s). Rename it, remove the existing one, or set force=true to %s it' % (
                                where, OWNER_LABEL, OWNER_VALUE,
                                'take it over and overwrite' if state == 'present' else 'delete'))
    before = policy_owned_view(current, wanted)
    after = policy_owned_view(wanted, wanted) if state == 'present' else None
    decided = _plan_without_merge(current, wanted, state, before, after)
    if decided:
        return decided
    body = _live_copy(current)
    meta = body.setdefault('metadata', {})
    for key in ('labels', 'annotations'):
        meta[key] = dict(meta.get(key) or {}, **(wanted['metadata'].get(key) or {}))
    for key in ('spec', 'specs'):
        if key in wanted:
            body[key] = copy.deepcopy(wanted[key])
        else:
            body.pop(key, None)
    return 'updated', body, before, after


def module_args(service):
    """The options of module clustermesh_service for a planned Service dict (``plan_services``)."""
    meta, spec = service['metadata'], service['spec']
    annotations = meta['annotations']
    args = {'name': meta['name'], 'namespace': meta['namespace'], 'type': spec['type'], 'ports': spec['ports'],
            'selector': spec.get('selector'), 'affinity': annotations.get(AFFINITY_ANNOTATION),
            'shared': annotations.get(SHARED_ANNOTATION)}
    return args


def mesh_check(services, policies, members):
    """Everything the ``services`` role needs from one look at the whole mesh: ``problems`` (stop before any
    write), ``warnings``, ``unknown_clusters`` (policy rules naming clusters outside the mesh), and per
    cluster the ``services`` (clustermesh_service options) and ``policies`` (definitions) to apply."""
    plan, problems, warnings = plan_services(members, services if services is not None else [])
    policy_plan_, policy_found, unknown = plan_policies(members, policies if policies is not None else [])
    return {'problems': problems + policy_found, 'warnings': warnings, 'unknown_clusters': unknown,
            'services': dict((c, [module_args(s) for s in svcs]) for c, svcs in plan.items()),
            'policies': policy_plan_}


# -- reads and writes (a cluster.Cluster) ----------------------------------------
def read_service(cluster, namespace, name):
    return cluster.read_service(namespace, name, missing_ok=True)


def write_service(cluster, action, body):
    meta = body['metadata']
    what = 'Service %s/%s' % (meta['namespace'], meta['name'])
    if action == 'created':
        cluster.call('create ' + what, cluster.core.create_namespaced_service, meta['namespace'], body)
    else:
        cluster.call('replace ' + what, cluster.core.replace_namespaced_service, meta['name'], meta['namespace'], body)


def delete_service(cluster, namespace, name):
    cluster.call('delete Service %s/%s' % (namespace, name), cluster.core.delete_namespaced_service, name, namespace,
                 missing_ok=True)


def _policy_call(cluster, verb, policy, *extra):
    """A CustomObjectsApi call on ``policy`` (its kind decides cluster-wide or namespaced)."""
    kind = policy['kind']
    meta = policy['metadata']
    group, version = POLICY_API_VERSION.split('/')
    plural = POLICY_KINDS[kind]
    name = meta['name']
    api = cluster.custom_objects
    if kind == 'CiliumClusterwideNetworkPolicy':
        funcs = {'get': (api.get_cluster_custom_object, (group, version, plural, name)),
                 'create': (api.create_cluster_custom_object, (group, version, plural) + extra),
                 'replace': (api.replace_cluster_custom_object, (group, version, plural, name) + extra),
                 'delete': (api.delete_cluster_custom_object, (group, version, plural, name))}
    else:
        ns = meta['namespace']
        funcs = {'get': (api.get_namespaced_custom_object, (group, version, ns, plural, name)),
                 'create': (api.create_namespaced_custom_object, (group, version, ns, plural) + extra),
                 'replace': (api.replace_namespaced_custom_object, (group, version, ns, plural, name) + extra),
                 'delete': (api.delete_namespaced_custom_object, (group, version, ns, plural, name))}
    func, args = funcs[verb]
    return cluster.call('%s %s' % (verb, policy_id(policy)), func, *args, missing_ok=verb in ('get', 'delete'))


def read_policy(cluster, policy):
    return _policy_call(cluster, 'get', policy)


def write_policy(cluster, action, body):
    _policy_call(cluster, 'create' if action == 'created' else 'replace', body, body)


def delete_policy(cluster, policy):
    _policy_call(cluster, 'delete', policy)
