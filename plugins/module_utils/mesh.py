# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0
"""Planning a cluster's ClusterMesh peer set (pure: no cluster, no Helm).

* ``normalize_peer``: the descriptor ``clustermesh_info`` returns (or a subset of it)
  reduced to what connecting needs: name, cluster_id, max_connected_clusters, the CA
  identity and the clustermesh-apiserver endpoint. Unknown keys are ignored.
* ``split_self``: drops the local cluster from a peer list (roles pass the whole mesh).
* ``validate_peers``: every reason not to connect, all at once, each naming both
  clusters and the field.
* ``entry_for`` / ``normalize_entries`` / ``plan_peers``: the entries of
  ``clustermesh.config.clusters`` we want, compared with the deployed ones (``remove``
  drops named entries in either membership mode).
* ``rollout_note``: what a peer change costs in restarts.

Entries are always sorted by name and their ``ips`` sorted, so repeated runs compare equal
whatever order the inventory or the Service lists them in.
"""

from ansible_collections.meshops.cilium.plugins.module_utils.common import (
    CLUSTER_NAME_MAX as NAME_MAX,
    CLUSTER_NAME_RE as NAME_RE,
    DEFAULT_MAX_CONNECTED,
    MAX_CONNECTED,
    int_or_none,
    json_digest,
)
from ansible_collections.meshops.cilium.plugins.module_utils.errors import MeshopsValueError
MEMBERSHIP_CHOICES = ('exact', 'merge')


def _ca_identity(desc):
    """``(sha256, subject_key_id)`` of a descriptor's CA, either may be None.

    Accepts ``ca: {sha256, subject_key_id}`` (clustermesh_info), ``ca: '<sha256>'`` or
    ``ca_fingerprint: '<sha256>'``.
    """
    ca = desc.get('ca')
    sha, ski = None, None
    if isinstance(ca, dict):
        sha, ski = ca.get('sha256'), ca.get('subject_key_id')
    elif isinstance(ca, str) and ca:
        sha = ca
    if desc.get('ca_fingerprint'):
        sha = desc['ca_fingerprint']
    return (str(sha).strip().upper().replace(':', '') if sha else None), (str(ski).strip().lower().replace(':', '') if ski else None)


def normalize_endpoint(endpoint):
    """``{ips: [sorted str], address: str|None, port: int|None}`` from any endpoint dict."""
    endpoint = endpoint if isinstance(endpoint, dict) else {}
    ips = sorted(set(str(i).strip() for i in (endpoint.get('ips') or []) if str(i).strip()))
    address = endpoint.get('address') or None
    return {'ips': ips, 'address': str(address).strip() if address else None,
            'port': int_or_none(endpoint.get('port'))}


def normalize_peer(desc):
    """A peer descriptor reduced to the fields connecting uses.

    ``desc`` is what ``clustermesh_info`` returns (``cluster_name`` is the name; ``name``
    is accepted too). Returns ``{name, cluster_id, max_connected_clusters, ca_sha256,
    ca_subject_key_id, endpoint}``; ``max_connected_clusters`` defaults to 255 like
    ``cilium-config`` does.
    """
    desc = desc if isinstance(desc, dict) else {}
    name = desc.get('cluster_name') or desc.get('name')
    mcc = int_or_none(desc.get('max_connected_clusters'))
    sha, ski = _ca_identity(desc)
    return {
        'name': str(name) if name else None,
        'cluster_id': int_or_none(desc.get('cluster_id')),
        'max_connected_clusters': mcc if mcc is not None else DEFAULT_MAX_CONNECTED,
        'ca_sha256': sha,
        'ca_subject_key_id': ski,
        'endpoint': normalize_endpoint(desc.get('endpoint')),
    }


def local_peer(identity, ca):
    """The local cluster as a normalized peer (no endpoint needed): ``identity`` holds its
    ``cluster_name``, ``cluster_id`` and ``max_connected_clusters`` (parsed from cilium-config, or
    its descriptor), ``ca`` its CA's fingerprint (``{sha256, subject_key_id}``) or None."""
    return normalize_peer({'cluster_name': identity.get('cluster_name'), 'cluster_id': identity.get('cluster_id'),
                           'max_connected_clusters': identity.get('max_connected_clusters'), 'ca': ca})


def local_from_descriptor(descriptor, api_server):
    """The local cluster as a normalized peer, from its own ``clustermesh_info`` descriptor
    ``descriptor`` read earlier in the run; None when it cannot stand for a read of ``api_server``
    now (no API server named, Cilium not installed then, or only planned). MeshopsValueError when
    it was read from another API server."""
    read_from = descriptor.get('api_server')
    if not read_from or descriptor.get('installed') is not True or descriptor.get('planned'):
        return None
    if str(read_from).rstrip('/') != str(api_server or '').rstrip('/'):
        raise MeshopsValueError('local: the descriptor was read from %s, not from %s, the cluster this module writes '
                                'to; pass this cluster\'s own clustermesh_info result (or leave local out)'
                                % (read_from, api_server))
    return local_peer(descriptor, descriptor.get('ca'))


def split_self(local, peers):
    """``(others, skipped)``: descriptors with the local name AND the local ID are skipped.

    A descriptor with the local name but another ID is kept: validation refuses it.
    """
    others, skipped = [], []
    for p in peers:
        if p['name'] == local['name'] and p['cluster_id'] == local['cluster_id']:
            skipped.append(p)
        else:
            others.append(p)
    return others, skipped


def _label(name):
    return name if name else '<unnamed>'


def _problem(a, b, field, message):
    a, b = _label(a), _label(b)
    text = '%s / %s: %s: %s' % (a, b, field, message) if a != b else '%s: %s: %s' % (a, field, message)
    return {'clusters': [a, b], 'field': field, 'message': text}


def _identity_problems(local_name, p, is_local=False):
    """Problems with one cluster's own name / ID (``p`` normalized)."""
    out = []
    name, cid = p['name'], p['cluster_id']
    who = 'local cluster' if is_local else 'peer'
    if not name:
        out.append(_problem(local_name, name, 'name', 'the %s has no cluster name (is Cilium installed?)' % who))
    elif len(name) > NAME_MAX or not NAME_RE.fullmatch(name):
        out.append(_problem(local_name, name, 'name',
                            '"%s" is not a valid cluster name (1-%d characters, lower case letters, '
                            'digits and "-", starting and ending with a letter or digit)' % (name, NAME_MAX)))
    elif name == 'default':
        out.append(_problem(local_name, name, 'name',
                            'the %s is named "default", which cannot take part in a mesh; give it a '
                            'unique name' % who))
    if cid is None:
        out.append(_problem(local_name, name, 'cluster_id', 'the %s has no cluster ID' % who))
    elif cid == 0:
        out.append(_problem(local_name, name, 'cluster_id',
                            'the %s has cluster ID 0, which is only valid outside a mesh' % who))
    return out


def peer_identity_problems(label, peers):
    """The problems of each peer's own name and ID (``peers`` normalized): what can be
    found from the options alone, before connecting to the local cluster (``label`` names it)."""
    problems = []
    for p in peers:
        problems.extend(_identity_problems(label, p))
    return problems


def validate_peers(local, peers):
    """Every problem with connecting ``local`` to ``peers`` (all normalized), as a list of
    ``{clusters: [a, b], field, message}``; empty when connecting is safe.

    Checked: names/IDs present, valid, not ``default``/0; names and IDs unique among the
    local cluster and all peers; each ID inside 1..maxConnectedClusters; the same
    maxConnectedClusters everywhere; the same CA everywhere (a missing CA is a problem);
    each peer has a usable endpoint (ips or address, and a port).
    """
    problems = []
    lname = local['name']
    problems.extend(_identity_problems(lname, local, is_local=True))
    lmcc = local['max_connected_clusters']
    if lmcc not in MAX_CONNECTED:
        problems.append(_problem(lname, lname, 'max_connected_clusters',
                                 'is %s; Cilium accepts only 255 or 511' % lmcc))
    if not local['ca_sha256'] and not local['ca_subject_key_id']:
        problems.append(_problem(lname, lname, 'ca',
                                 'the local cluster has no CA (Secret cilium-ca): peers could not '
                                 'authenticate it'))

    seen_names = {}
    seen_ids = {}
    if lname:
        seen_names[lname] = lname
    if local['cluster_id'] is not None:
        seen_ids[local['cluster_id']] = lname
    for p in peers:
        pname, pid = p['name'], p['cluster_id']
        problems.extend(_identity_problems(lname, p))
        # Uniqueness (against the local cluster and the peers before this one).
        if pname:
            if pname in seen_names:
                other = seen_names[pname]
                if other == lname and pname == lname:
                    problems.append(_problem(lname, pname, 'name',
                                             'a peer has the local cluster name "%s" but cluster ID %s '
                                             '(local ID %s): names must be unique in a mesh'
                                             % (pname, pid, local['cluster_id'])))
                else:
                    problems.append(_problem(other, pname, 'name',
                                             'the name "%s" is used by two peers' % pname))
            else:
                seen_names[pname] = pname
        if pid:
            if pid in seen_ids and seen_ids[pid] != pname:
                problems.append(_problem(seen_ids[pid], pname, 'cluster_id',
                                         'both have cluster ID %s; IDs must be unique in a mesh' % pid))
            elif pid not in seen_ids:
                seen_ids[pid] = pname
            # Range: the local limit decides what the local agents accept.
            limit = lmcc if lmcc in MAX_CONNECTED else DEFAULT_MAX_CONNECTED
            if not 1 <= pid <= limit:
                problems.append(_problem(lname, pname, 'cluster_id',
                                         'the peer\'s cluster ID %s is outside 1..%s (the local '
                                         'max_connected_clusters)' % (pid, limit)))
        if p['max_connected_clusters'] != lmcc:
            problems.append(_problem(lname, pname, 'max_connected_clusters',
                                     'differs: %s has %s, %s has %s; it must be identical mesh-wide'
                                     % (_label(lname), lmcc, _label(pname), p['max_connected_clusters'])))
        problems.extend(_ca_problems(local, p))
        ep = p['endpoint']
        if not ep['ips'] and not ep['address']:
            problems.append(_problem(lname, pname, 'endpoint',
                                     'the peer has no usable clustermesh-apiserver endpoint (no IPs and '
                                     'no address: is the clustermesh-apiserver enabled and its '
                                     'LoadBalancer assigned?)'))
        if ep['port'] is None or not 0 < ep['port'] < 65536:
            problems.append(_problem(lname, pname, 'endpoint.port',
                                     'the peer\'s clustermesh-apiserver endpoint has no valid port (%s)'
                                     % ep['port']))
    return problems


def _ca_problems(local, p):
    lname, pname = local['name'], p['name']
    l_sha, l_ski = local['ca_sha256'], local['ca_subject_key_id']
    p_sha, p_ski = p['ca_sha256'], p['ca_subject_key_id']
    if not p_sha and not p_ski:
        return [_problem(lname, pname, 'ca', 'the peer has no CA (Secret cilium-ca); clusters of a mesh must '
                                             'share one CA')]
    if not l_sha and not l_ski:
        return []  # reported once for the local cluster
    if l_sha and p_sha:
        same = l_sha == p_sha
    else:
        same = bool(l_ski and p_ski and l_ski == p_ski)
    if same:
        return []
    return [_problem(lname, pname, 'ca',
                     'the CAs differ (%s: %s, %s: %s): agents would fail TLS with "bad certificate"; '
                     'copy Secret cilium-ca from one cluster to the other before connecting'
                     % (_label(lname), _short(l_sha or l_ski), _label(pname), _short(p_sha or p_ski)))]


def _short(fp):
    return fp[:16] + '...' if fp and len(fp) > 16 else fp


# ---------------------------------------------------------------------------
# clustermesh.config.clusters entries
# ---------------------------------------------------------------------------

def entry_for(peer):
    """The ``clustermesh.config.clusters`` entry for a normalized peer:
    ``{name, ips, port}`` or, without IPs, ``{name, address, port}``."""
    ep = peer['endpoint']
    if ep['ips']:
        return {'name': peer['name'], 'ips': list(ep['ips']), 'port': ep['port']}
    return {'name': peer['name'], 'address': ep['address'], 'port': ep['port']}


def _normalize_entry(name, entry):
    entry = dict(entry) if isinstance(entry, dict) else {}
    entry.pop('name', None)
    out = {'name': name}
    if entry.get('ips'):
        out['ips'] = sorted(set(str(i) for i in entry['ips']))
    elif entry.get('address'):
        out['address'] = str(entry['address'])
    port = int_or_none(entry.get('port'))
    if port is not None:
        out['port'] = port
    # Anything else the user put there (enabled, tls, ...) is kept as it is.
    for k, v in entry.items():
        if k not in ('ips', 'address', 'port'):
            out[k] = v
    if 'ips' in entry and not entry.get('ips') and not entry.get('address'):
        out['ips'] = []
    return out


def normalize_entries(clusters):
    """Deployed ``clustermesh.config.clusters`` (list or map form, or None) as a list of
    entries sorted by name (``ips`` sorted, ``port`` an int, other keys kept)."""
    out = {}
    if isinstance(clusters, dict):
        for name, entry in clusters.items():
            out[str(name)] = _normalize_entry(str(name), entry)
    elif isinstance(clusters, list):
        for entry in clusters:
            if isinstance(entry, dict) and entry.get('name'):
                out[str(entry['name'])] = _normalize_entry(str(entry['name']), entry)
    return [out[n] for n in sorted(out)]


def entries_digest(entries):
    """SHA-256 of a list of entries (canonical JSON). Stands for a release's peer entries in a
    descriptor (entries may hold TLS material): equal digests of ``normalize_entries`` of the
    deployed value and of ``wanted_entries`` mean ``plan_peers`` finds nothing to change."""
    return json_digest(entries)


def wanted_entries(peers):
    """The entries ``plan_peers`` wants for normalized ``peers``, sorted by name (a later peer of
    the same name wins, as there)."""
    wanted = dict((p['name'], entry_for(p)) for p in peers)
    return [wanted[n] for n in sorted(wanted)]


def plan_peers(current_entries, peers, membership='exact', remove=()):
    """What ``clustermesh.config.clusters`` should hold.

    :param current_entries: the deployed value (list or map form, or None).
    :param peers: normalized peers (self already removed, validated).
    :param membership: ``exact`` prunes deployed entries whose name is not a peer;
        ``merge`` keeps them untouched.
    :param remove: names removed from the deployed entries whatever ``membership`` says
        (a name both in ``peers`` and ``remove`` raises ValueError: ``remove_conflicts``).
    :returns: ``{entries, added, removed, changed, kept, unchanged, changes}``; ``entries``
        sorted by name; name lists sorted; ``changes`` is true when entries differ.
    """
    if membership not in MEMBERSHIP_CHOICES:
        raise MeshopsValueError('membership must be one of %s' % ', '.join(MEMBERSHIP_CHOICES))
    remove = set(str(r) for r in (remove or ()))
    conflicts = remove_conflicts(peers, remove)
    if conflicts:
        raise MeshopsValueError('%s both in peers and in remove' % ', '.join(conflicts))
    current = dict((e['name'], e) for e in normalize_entries(current_entries))
    wanted = dict((e['name'], e) for e in wanted_entries(peers))
    desired = {}
    added, changed, unchanged, kept, removed = [], [], [], [], []
    for name, entry in wanted.items():
        desired[name] = entry
        if name not in current:
            added.append(name)
        elif current[name] != entry:
            changed.append(name)
        else:
            unchanged.append(name)
    for name, entry in current.items():
        if name in wanted:
            continue
        if membership == 'merge' and name not in remove:
            desired[name] = entry
            kept.append(name)
        else:
            removed.append(name)
    entries = [desired[n] for n in sorted(desired)]
    return {
        'entries': entries,
        'added': sorted(added),
        'removed': sorted(removed),
        'changed': sorted(changed),
        'unchanged': sorted(unchanged),
        'kept': sorted(kept),
        'changes': bool(added or removed or changed),
    }


PLANNED_ADDRESS = '(known once installed by this run)'
PLANNED_FIELDS = ('endpoint', 'endpoint.port', 'ca')


def plan_planned_peers(peers, planned_names):
    """Check mode: peers that this run would install first (``planned_names``) have no
    clustermesh-apiserver endpoint and no CA yet. Their endpoint becomes a placeholder the
    preview shows; returns the peers (copies) in the same order."""
    out = []
    for p in peers:
        if p['name'] in planned_names:
            p = dict(p, endpoint={'ips': [], 'address': PLANNED_ADDRESS, 'port': p['endpoint']['port']})
        out.append(p)
    return out


def drop_planned_problems(problems, planned_names):
    """``problems`` without the endpoint and CA problems of planned peers (they only exist after
    the install this run would do; the CA is the one the same run copies)."""
    return [x for x in problems
            if not (x['field'] in PLANNED_FIELDS and x['clusters'][1] in planned_names)]


def remove_conflicts(peers, remove):
    """Sorted names that are both a peer and to be removed."""
    remove = set(str(r) for r in (remove or ()))
    return sorted(set(p['name'] for p in peers if p['name'] in remove))


def peer_summary(entries):
    """Entries for a diff or a result: name, ips/address, port, enabled; never ``tls``."""
    out = []
    for e in entries:
        item = {'name': e['name']}
        for k in ('ips', 'address', 'port', 'enabled'):
            if k in e:
                item[k] = e[k]
        if 'tls' in e:
            item['tls'] = '********'
        out.append(item)
    return out


def rollout_note(kvstoremesh, host_aliases=True):
    """What a peer change restarts (facts section 4, "Operational cost"). ``host_aliases``: whether the
    release maps the peers' names with hostAliases in a pod template (``values.peer_host_aliases``);
    False: chart 1.20 and newer with clustermesh.disableKubernetesHostAliases, where Cilium's programs
    resolve the peers themselves and read the changed configuration without a restart."""
    if host_aliases is False:
        return ('The peers\' IPs are not hostAliases of any pod template (chart 1.20 or newer with '
                'clustermesh.disableKubernetesHostAliases: Cilium\'s programs resolve the peers from their '
                'configuration, cilium-host-aliases): this change restarts no pod; %s read the changed '
                'configuration Secret when it reaches them.'
                % ('KVStoreMesh and the agents' if kvstoremesh else 'the agents'))
    if kvstoremesh is True:
        return ('KVStoreMesh is on: the peers\' IPs are hostAliases of the clustermesh-apiserver '
                'Deployment, so this change restarts only the clustermesh-apiserver pods; the '
                'cilium agents are not restarted.')
    if kvstoremesh is False:
        return ('KVStoreMesh is off: the peers\' IPs are hostAliases of the cilium DaemonSet, so this '
                'change rolls every cilium agent of the cluster (a rolling restart of the DaemonSet).')
    return ('KVStoreMesh state unknown: the change restarts either the clustermesh-apiserver '
            'Deployment (KVStoreMesh on) or every cilium agent (KVStoreMesh off).')


def secrets_only_change(config_enabled, host_aliases):
    """Whether a change of peers changes nothing of the release but the data of its mesh configuration
    Secrets (cilium-clustermesh, cilium-kvstoremesh): the mesh configuration already on
    (``config_enabled``, clustermesh.config.enabled) and no pod template mapping the peers' names
    (``host_aliases`` False, see ``rollout_note``). The rest of the manifests is then a deployed revision's,
    which the API server accepted: the upgrade needs no OpenAPI check of its own."""
    return config_enabled is True and host_aliases is False
