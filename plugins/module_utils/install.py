# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0
"""``cilium_install``'s options, and the answer it gives without a module process.

``INSTALL_ARGUMENT_SPEC`` is the module's own argument spec (the connection options are added by
``ClusterModule``). ``unchanged_by_description`` is what the action plugin ``cilium_install`` returns
on the controller when this run's description of the release (``clustermesh_info``, read by the
preflight) already shows the release deployed from the target chart version with exactly the values
this install would give Helm (the peers that ``clustermesh_connect`` writes aside): the module would
read the release, find nothing to change and exit unchanged. Anything else, including every doubt,
is left to the module. Pure: nothing here talks to a cluster.
"""

from ansible_collections.meshops.cilium.plugins.module_utils.base import (
    CLUSTERMESH_APISERVER_ARGUMENT_SPEC,
    HELM_CHART_ARGUMENT_SPEC,
    RELEASE_ARGUMENT_SPEC,
    merged_spec,
    wait_argument_spec,
)
from ansible_collections.meshops.cilium.plugins.module_utils.ipsec import encryption_settings
from ansible_collections.meshops.cilium.plugins.module_utils.values import (
    install_values,
    rendered_already,
    validate_install_options,
)

INSTALL_ARGUMENT_SPEC = merged_spec(
    RELEASE_ARGUMENT_SPEC,
    HELM_CHART_ARGUMENT_SPEC,
    state=dict(type='str', choices=['present', 'absent'], default='present'),
    cluster_name=dict(type='str'),
    cluster_id=dict(type='int'),
    ipam_mode=dict(type='str'),
    cluster_pool_ipv4_pod_cidrs=dict(type='list', elements='str'),
    kube_proxy_replacement=dict(type='raw'),
    k8s_service_host=dict(type='str'),
    k8s_service_port=dict(type='int'),
    routing_mode=dict(type='str', choices=['tunnel', 'native']),
    tunnel_protocol=dict(type='str', choices=['vxlan', 'geneve']),
    ipv4_native_routing_cidr=dict(type='str'),
    max_connected_clusters=dict(type='int', choices=[255, 511]),
    encryption_type=dict(type='str', choices=['disabled', 'ipsec', 'wireguard'], aliases=['encryption']),
    ipsec_key_rotation_duration=dict(type='str', no_log=False),
    peer_host_aliases=dict(type='bool', default=False),
    clustermesh_apiserver=dict(type='dict', options=merged_spec(
        CLUSTERMESH_APISERVER_ARGUMENT_SPEC,
        enabled=dict(type='bool'),
    )),
    values=dict(type='dict', default={}),
    existing_values=dict(type='str', choices=['refuse', 'keep', 'reset'], default='refuse'),
    default_options=dict(type='list', elements='str', default=[]),
    allow_identity_change=dict(type='bool', default=False),
    release_described=dict(type='dict'),
    wait_clustermesh_apiserver=dict(type='str', choices=['ready', 'address'], default='ready'),
    **wait_argument_spec()
)

# What the module returns of a release (helm.release_summary), taken from a description.
SUMMARY_KEYS = ('name', 'namespace', 'revision', 'status', 'chart_version')


def unchanged_by_description(params, described):
    """The result ``cilium_install`` returns for ``params`` (validated, defaults filled in) when
    ``described`` (the ``release`` of this run's ``clustermesh_info`` descriptor of the same cluster)
    proves there is nothing to do; else None, and the module runs.

    Nothing to do means: state present; the same release; deployed (not failed, not pending); from
    ``chart_version`` (given: a chart without a version is read by the module); with exactly the
    values this install would give Helm (their digest; the peers aside, which the module keeps as
    they are). The module would then change nothing and not wait (an unchanged release is not
    polled). Left to the module: a bad option or a warning (it reports them), IPsec (it checks the
    key Secret on every run)."""
    if params.get('state') != 'present' or not isinstance(described, dict):
        return None
    if described.get('name') != params.get('release_name') or described.get('namespace') != params.get('namespace'):
        return None
    target = params.get('chart_version')
    if not target:
        return None
    try:
        if validate_install_options(params):
            return None  # warnings: the module gives them
        values = install_values(params)
    except (TypeError, ValueError):
        return None
    if encryption_settings(values)['enabled']:
        return None
    if not rendered_already(described, target, values):
        return None
    return dict(changed=False, action='unchanged', release=dict((k, described.get(k)) for k in SUMMARY_KEYS),
                changed_keys=[], chart_change=None, warnings_detail=[], existing_values=[],
                read='the release as this run described it (release_described): no module process, no request')
