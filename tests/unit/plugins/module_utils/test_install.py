# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0
"""cilium_install's answer from this run's description of the release (module_utils/install.py),
checked against the module's own plan on the release that description stands for."""

import copy

import pytest
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.meshops.cilium.plugins.module_utils.base import cluster_argument_spec
from ansible_collections.meshops.cilium.plugins.module_utils.install import (
    INSTALL_ARGUMENT_SPEC,
    unchanged_by_description,
)
from ansible_collections.meshops.cilium.plugins.module_utils.values import install_values, plan_install, values_digest

# what the cilium role passes (roles/cilium/tasks/main.yml), as strings where a template gives strings
ROLE_ARGS = {
    'release_name': 'cilium', 'namespace': 'kube-system', 'chart_ref': '/charts/cilium-1.20.2.tgz',
    'chart_version': '1.20.2', 'cluster_name': 'mesh-1', 'cluster_id': '1', 'ipam_mode': 'kubernetes',
    'kube_proxy_replacement': 'false', 'routing_mode': 'tunnel', 'tunnel_protocol': 'vxlan',
    'max_connected_clusters': '255',
    'clustermesh_apiserver': {'enabled': True, 'service_type': 'NodePort', 'annotations': {},
                              'tls_auto_method': 'helm'},
    'values': {'operator': {'replicas': 1}, 'debug': {'enabled': True}},
    'existing_values': 'refuse', 'default_options': ['cluster_name'], 'allow_identity_change': False,
    'wait': True, 'wait_timeout': 300, 'kubeconfig': '/nowhere/kubeconfig', 'context': 'mesh-1',
}
PEERS = {'mesh-2': {'ips': ['10.0.2.1'], 'port': 32379}, 'mesh-3': {'ips': ['10.0.3.1'], 'port': 32379}}


def params(**changes):
    args = copy.deepcopy(ROLE_ARGS)
    args.update(changes)
    result = ArgumentSpecValidator(cluster_argument_spec(INSTALL_ARGUMENT_SPEC)).validate(args)
    assert not result.error_messages, result.error_messages
    return result.validated_parameters


def deployed_values(p):
    """The user values of a release that p's install, then clustermesh_connect, left behind."""
    values = install_values(p)
    values['clustermesh'].setdefault('config', {})['clusters'] = copy.deepcopy(PEERS)
    return values


def described(values, **changes):
    """The release part of clustermesh_info's descriptor of a release with these user values."""
    release = {'name': 'cilium', 'namespace': 'kube-system', 'revision': 4, 'status': 'deployed',
               'chart_name': 'cilium', 'chart_version': '1.20.2', 'values_sha256': values_digest(values)}
    release.update(changes)
    return release


def test_the_release_this_install_left_is_unchanged_and_the_module_plans_the_same():
    p = params()
    values = deployed_values(p)
    answer = unchanged_by_description(p, described(values))
    assert answer == {
        'changed': False, 'action': 'unchanged', 'changed_keys': [], 'chart_change': None, 'warnings_detail': [],
        'existing_values': [], 'read': answer['read'],
        'release': {'name': 'cilium', 'namespace': 'kube-system', 'revision': 4, 'status': 'deployed',
                    'chart_version': '1.20.2'}}
    assert 'no module process' in answer['read']
    # the module, reading that release itself, finds nothing to do either
    plan = plan_install(p, values, '1.20.2', True, '1.20.2')
    assert plan['action'] == 'none' and plan['changed_keys'] == [] and not plan['warnings'], plan


@pytest.mark.parametrize('change, release', [
    ({'cluster_id': '2'}, {}),                                              # another identity
    ({'values': {'operator': {'replicas': 2}, 'debug': {'enabled': True}}}, {}),  # another value
    ({'values': {'operator': {'replicas': 1}}}, {}),                        # a value dropped
    ({'chart_version': '1.20.3'}, {}),                                      # an upgrade
    ({}, {'chart_version': '1.19.4'}),
    ({}, {'status': 'failed'}),                                             # re-applied by the module
    ({}, {'status': 'pending-upgrade'}),                                    # refused by the module
    ({}, {'name': 'other'}),                                                # not this task's release
    ({}, {'namespace': 'cilium'}),
    ({}, {'values_sha256': None}),
    ({'state': 'absent'}, {}),
    ({'chart_version': None}, {}),                                          # the module reads the chart
    ({'cluster_id': '999'}, {}),                                            # a bad option: the module says it
    ({'values': {'operator': {'replicas': 1}, 'debug': {'enabled': True},
                 'encryption': {'enabled': True, 'type': 'ipsec'}}}, {}),   # the module checks the key Secret
])
def test_anything_else_is_left_to_the_module(change, release):
    p = params(**change)
    values = deployed_values(params())
    assert unchanged_by_description(p, described(values, **release)) is None


def test_no_description_or_not_a_mapping():
    p = params()
    assert unchanged_by_description(p, None) is None
    assert unchanged_by_description(p, {}) is None
    assert unchanged_by_description(p, 'deployed') is None
