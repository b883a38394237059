# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0
"""``clustermesh_connect``'s options, and the answer it gives without a module process.

``CONNECT_ARGUMENT_SPEC`` is the module's own argument spec (the connection options are added by
``ClusterModule``). ``unchanged_by_description`` is what the action plugin ``clustermesh_connect``
returns on the controller when the task's ``local`` descriptor (this run's ``clustermesh_info`` of
the same cluster, read from the API server the task targets) shows the release deployed with
``clustermesh.config.enabled`` and exactly the peer entries this task wants (by digest): the module
would read the release, find nothing to change and exit unchanged. Anything else, including every
doubt, is left to the module. Pure: nothing here talks to a cluster.
"""

from ansible_collections.meshops.cilium.plugins.module_utils.base import (
    HELM_BINARY_ARGUMENT_SPEC,
    RELEASE_ARGUMENT_SPEC,
    merged_spec,
    wait_argument_spec,
)
from ansible_collections.meshops.cilium.plugins.module_utils.errors import MeshopsValueError
from ansible_collections.meshops.cilium.plugins.module_utils.mesh import (
    entries_digest,
    local_from_descriptor,
    normalize_peer,
    peer_identity_problems,
    split_self,
    validate_peers,
    wanted_entries,
)
from ansible_collections.meshops.cilium.plugins.module_utils.values import clusters_value

CONNECT_ARGUMENT_SPEC = merged_spec(
    RELEASE_ARGUMENT_SPEC,
    HELM_BINARY_ARGUMENT_SPEC,
    peers=dict(type='list', elements='dict', required=True),
    membership=dict(type='str', choices=['exact', 'merge'], default='exact'),
    remove=dict(type='list', elements='str', default=[]),
    local=dict(type='dict'),
    chart_ref=dict(type='str'),
    **wait_argument_spec()
)

READ_NOTHING = "this cluster's own descriptor of this run (local): no module process, no request"


def clusters_form(chart_version):
    """``map`` or ``list``: the form of ``clustermesh.config.clusters`` for ``chart_version``."""
    return 'map' if isinstance(clusters_value([], chart_version), dict) else 'list'


def unchanged_by_description(params, api_server):
    """The result ``clustermesh_connect`` returns for ``params`` (validated, defaults filled in) when
    ``params['local']`` proves there is nothing to do; else None, and the module runs.

    ``api_server`` is the API server the task's connection options resolve to: the descriptor must
    have been read from it. Nothing to do means: the same release, deployed, with
    ``clustermesh.config.enabled`` true and the deployed entries (normalized, by digest) equal to the
    ones this task wants from ``peers``; every peer valid (identity, CA, endpoint: a problem is the
    module's to report); nothing to remove; no planned peer. Equal entries leave nothing to add,
    change, prune or keep, whatever ``membership`` says."""
    desc = params.get('local')
    if not isinstance(desc, dict) or params.get('remove') or not api_server:
        return None
    release = desc.get('release')
    if not isinstance(release, dict) or release.get('status') != 'deployed':
        return None
    if release.get('name') != params.get('release_name') or release.get('namespace') != params.get('namespace'):
        return None
    if release.get('clustermesh_config_enabled') is not True or not release.get('peers_sha256'):
        return None
    raw = params.get('peers') or []
    if any(not isinstance(d, dict) or d.get('planned') for d in raw):
        return None
    try:
        local = local_from_descriptor(desc, api_server)
    except MeshopsValueError:
        return None  # read from another API server: the module refuses it, naming both
    if local is None:
        return None
    peers = [normalize_peer(d) for d in raw]
    if peer_identity_problems(local['name'], peers):
        return None
    peers, skipped = split_self(local, peers)
    if validate_peers(local, peers):
        return None
    entries = wanted_entries(peers)
    if entries_digest(entries) != release['peers_sha256']:
        return None
    plan = {'entries': entries, 'added': [], 'removed': [], 'changed': [], 'kept': []}
    result = connect_result(local, plan, skipped, (), None, desc.get('kvstoremesh'), release.get('chart_version'),
                            clusters_form(release.get('chart_version')), release.get('revision'))
    result.update(changed=False, api_server=api_server, read=READ_NOTHING)
    return result


def connect_result(local, plan, skipped, planned, rollout, kvstoremesh, chart_version, form, revision):
    """The fields ``clustermesh_connect`` returns about a plan (``plan_peers``' entries, added, removed,
    changed, kept), whether the module made it or a description answered for it."""
    return dict(
        local={'name': local['name'], 'cluster_id': local['cluster_id'],
               'max_connected_clusters': local['max_connected_clusters']},
        peers=[e['name'] for e in plan['entries']],
        added=plan['added'], removed=plan['removed'], changed_peers=plan['changed'], kept=plan['kept'],
        skipped_self=[s['name'] for s in skipped], planned=sorted(planned), rollout=rollout,
        kvstoremesh=kvstoremesh, chart_version=chart_version, clusters_form=form, revision=revision,
    )
