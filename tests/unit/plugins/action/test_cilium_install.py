# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0
"""The action plugin of cilium_install in a real play: a description that shows the release already
as this task would make it answers on the controller (no module process: the kubeconfig it would
need does not exist); any other description, or none, runs the module (which then fails on that
kubeconfig, naming it)."""

import copy
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.meshops.cilium.plugins.module_utils.install import INSTALL_ARGUMENT_SPEC
from ansible_collections.meshops.cilium.plugins.module_utils.values import install_values, values_digest

ARGS = {
    'chart_ref': '/charts/cilium-1.20.2.tgz', 'chart_version': '1.20.2', 'cluster_name': 'mesh-1',
    'cluster_id': '{{ 1 }}', 'ipam_mode': 'kubernetes', 'routing_mode': 'tunnel', 'max_connected_clusters': 255,
    'clustermesh_apiserver': {'enabled': True, 'service_type': 'NodePort'},
    'values': {'operator': {'replicas': 1}},
    'kubeconfig': '/nowhere/kubeconfig', 'context': 'mesh-1',
}


def _release(**changes):
    args = dict((k, v) for k, v in ARGS.items() if k not in ('kubeconfig', 'context'))
    args['cluster_id'] = 1
    params = ArgumentSpecValidator(INSTALL_ARGUMENT_SPEC).validate(args).validated_parameters
    values = install_values(params)
    values['clustermesh'].setdefault('config', {})['clusters'] = {'mesh-2': {'ips': ['10.0.2.1'], 'port': 32379}}
    release = {'name': 'cilium', 'namespace': 'kube-system', 'revision': 3, 'status': 'deployed',
               'chart_version': '1.20.2', 'values_sha256': values_digest(values)}
    release.update(changes)
    return release


def test_a_release_described_as_this_task_would_make_it_needs_no_module(play_results):
    cases = []
    for name, described in (('same', _release()), ('other_chart', _release(chart_version='1.19.4')),
                            ('failed', _release(status='failed')), ('none', None)):
        args = copy.deepcopy(ARGS)
        if described is not None:
            args['release_described'] = described
        cases.append((name, args))
    results = play_results('meshops.cilium.cilium_install', cases)
    for check in (False, True):
        same = results['same', check]
        assert same.get('failed') is not True and same['changed'] is False and same['action'] == 'unchanged', same
        assert same['release'] == {'name': 'cilium', 'namespace': 'kube-system', 'revision': 3, 'status': 'deployed',
                                   'chart_version': '1.20.2'}
        assert 'no module process' in same['read']
        for name in ('other_chart', 'failed', 'none'):
            r = results[name, check]
            # the module ran: it needs the cluster, and names the kubeconfig it could not read
            assert r['failed'] is True and 'kubeconfig file /nowhere/kubeconfig does not exist' in r['msg'], (name, r)
            assert 'read' not in r
