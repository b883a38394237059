# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0

import json

import pytest

from ansible_collections.meshops.cilium.plugins.module_utils.base import (
    MASK,
    RELEASE_ARGUMENT_SPEC,
    build_diff,
    cluster_argument_spec,
    mask_secrets,
    merged_spec,
    read_until,
    wait_argument_spec,
)


def test_mask_secret_object_masks_every_data_value():
    secret = {'kind': 'Secret', 'metadata': {'name': 'cilium-ipsec-keys'},
              'data': {'keys': 'MysgcmZj', 'anything': 'eA=='}, 'stringData': {'x': 'y'}}
    out = mask_secrets(secret)
    assert out['data'] == {'keys': MASK, 'anything': MASK}
    assert out['stringData'] == {'x': MASK}
    assert out['metadata'] == {'name': 'cilium-ipsec-keys'}
    assert secret['data']['keys'] == 'MysgcmZj'  # input untouched


def test_mask_nested_keys_in_values():
    values = {'tls': {'ca': {'cert': 'Q0VSVA==', 'key': 'S0VZ'}},
              'clustermesh': {'config': {'clusters': [{'name': 'a', 'tls': {'key': 'SECRET'}}]}}}
    out = mask_secrets(values)
    assert out['tls']['ca'] == {'cert': 'Q0VSVA==', 'key': MASK}
    assert out['clustermesh']['config']['clusters'][0]['tls']['key'] == MASK
    assert mask_secrets({'key': ''}) == {'key': ''}


def test_build_diff_masks_both_sides():
    d = build_diff({'token': 'old'}, {'token': 'new', 'name': 'x'})
    assert d == {'before': {'token': MASK}, 'after': {'token': MASK, 'name': 'x'}}


def test_argument_spec_merge_module_wins_and_copy():
    spec = cluster_argument_spec({'namespace': {'type': 'str', 'default': 'kube-system'},
                                  'connect_timeout': {'type': 'int', 'default': 3}})
    assert spec['namespace']['default'] == 'kube-system'
    assert spec['connect_timeout']['default'] == 3
    assert cluster_argument_spec()['connect_timeout']['default'] == 10
    assert 'kubeconfig' in spec and spec['api_key']['no_log'] is True


def test_merged_spec_later_wins_and_shared_specs_untouched():
    spec = merged_spec(RELEASE_ARGUMENT_SPEC, {'namespace': dict(type='str')}, wait=dict(type='bool'))
    assert spec == {'release_name': dict(type='str', default='cilium'), 'namespace': dict(type='str'),
                    'wait': dict(type='bool')}
    spec['release_name']['default'] = 'other'
    assert RELEASE_ARGUMENT_SPEC['release_name'] == dict(type='str', default='cilium')
    assert RELEASE_ARGUMENT_SPEC['namespace'] == dict(type='str', default='kube-system')


def test_chart_repo_url_with_credentials_refused_without_the_password():
    from ansible_collections.meshops.cilium.plugins.module_utils.base import chart_repo_url_problem
    assert chart_repo_url_problem(None) is None
    assert chart_repo_url_problem('https://helm.cilium.io') is None
    assert chart_repo_url_problem('https://helm.cilium.io/a@b') is None
    msg = chart_repo_url_problem('https://robot:Pa55w0rd-x@charts.example.com/cilium')
    assert 'Pa55w0rd-x' not in msg and 'robot' not in msg
    assert 'https://%s@charts.example.com/cilium' % MASK in msg
    assert 'helm repo add' in msg and 'chart_ref' in msg
    assert chart_repo_url_problem('oci://tok3n@registry.example.com/charts') is not None


def test_wait_argument_spec_defaults_and_order():
    assert list(wait_argument_spec()) == ['wait', 'wait_timeout']
    assert wait_argument_spec() == dict(wait=dict(type='bool', default=False), wait_timeout=dict(type='int', default=300))
    assert wait_argument_spec(wait=True, timeout=60) == dict(
        wait=dict(type='bool', default=True), wait_timeout=dict(type='int', default=60))
    # each call builds new dicts: a module changing its copy changes no other module's
    assert wait_argument_spec()['wait'] is not wait_argument_spec()['wait']


def test_read_until_reads_once_without_wait_and_polls_with_it(monkeypatch):
    from ansible_collections.meshops.cilium.plugins.module_utils import base
    slept = []
    monkeypatch.setattr(base.time, 'sleep', slept.append)
    answers = iter([False, False, True, True])
    assert read_until(lambda: next(answers), bool, {'wait': False, 'wait_timeout': 60, 'wait_interval': 2}) \
        == (False, 1)
    assert slept == []
    assert read_until(lambda: next(answers), bool, {'wait': True, 'wait_timeout': 60, 'wait_interval': 2}) \
        == (True, 2)
    assert slept == [0.5]


def test_read_until_stops_before_the_timeout_would_pass(monkeypatch):
    from ansible_collections.meshops.cilium.plugins.module_utils import base
    now = [1000.0]
    monkeypatch.setattr(base.time, 'time', lambda: now[0])
    monkeypatch.setattr(base.time, 'sleep', lambda s: now.__setitem__(0, now[0] + s))
    result, attempts = read_until(lambda: False, bool, {'wait': True, 'wait_timeout': 10, 'wait_interval': 3})
    # pauses of 0.5, 0.75, 1.125, 1.6875, 2.53125, then 3 s: reads at 0, 0.5, 1.25, 2.375, 4.0625, 6.59375
    # and 9.59375 s; a next one at 12.59375 s would be past the 10 s timeout
    assert result is False and attempts == 7 and now[0] == 1009.59375


def test_wait_pauses_start_short_and_grow_to_the_interval():
    from itertools import islice

    from ansible_collections.meshops.cilium.plugins.module_utils.common import wait_pauses
    assert list(islice(wait_pauses(5), 8)) == [0.5, 0.75, 1.125, 1.6875, 2.53125, 3.796875, 5, 5]
    assert list(islice(wait_pauses(1), 4)) == [0.5, 0.75, 1, 1]
    # an interval shorter than the first pause is the pause
    assert list(islice(wait_pauses(0.25), 2)) == [0.25, 0.25]


def _worker_params(tmp_path, **options):
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
    from ansible_collections.meshops.cilium.plugins.module_utils.base import cluster_argument_spec
    kubeconfig = tmp_path / 'kubeconfig'
    kubeconfig.write_text(json.dumps({
        'apiVersion': 'v1', 'kind': 'Config', 'current-context': 'mesh-1',
        'clusters': [{'name': 'mesh-1', 'cluster': {'server': 'https://127.0.0.1:9'}}],
        'users': [{'name': 'mesh-1', 'user': {'token': 'tok-secret'}}],
        'contexts': [{'name': 'mesh-1', 'context': {'cluster': 'mesh-1', 'user': 'mesh-1'}}]}))
    spec = {'password': dict(type='str', no_log=True), 'values': dict(type='dict', default={})}
    validated = ArgumentSpecValidator(cluster_argument_spec(spec)).validate(
        dict(options, kubeconfig=str(kubeconfig), context='mesh-1'))
    assert not validated.error_messages
    return spec, validated


def test_run_in_worker_gives_what_the_module_would_print(tmp_path):
    """A module's run function called in the task's worker: its exit and its failures are results, named
    after the cluster, with the spec's no_log options, the secrets inside free-form options and the
    connection's credentials masked, warnings kept (masked too)."""
    from ansible_collections.meshops.cilium.plugins.module_utils.base import run_in_worker
    from ansible_collections.meshops.cilium.plugins.module_utils.errors import MeshopsError
    spec, validated = _worker_params(tmp_path, password='pw-secret', values={'token': 'free-form-secret'})
    params = validated.validated_parameters

    def ok(m):
        assert m.check_mode is True and m.diff_mode is False
        m.warn('saw pw-secret')
        m.exit(changed=True, echo=[m.params['password'], m.params['values']['token'], sorted(m.connection.secrets())])

    res = run_in_worker(ok, spec, params, 'meshops.cilium.x', check_mode=True, no_log_values=validated._no_log_values)
    assert res['changed'] is True and res['cluster'] == 'mesh-1' and res['api_server'] == 'https://127.0.0.1:9'
    for secret in ('pw-secret', 'free-form-secret', 'tok-secret'):
        assert secret not in json.dumps(res)
    assert res['warnings'] == ['mesh-1: saw ********']

    def refused(m):
        m.fail('refusing: %s' % m.params['password'])
    res = run_in_worker(refused, spec, params, 'meshops.cilium.x', no_log_values=validated._no_log_values)
    assert res['failed'] is True and res['msg'] == 'mesh-1: refusing: ********'

    def raises(m):
        raise MeshopsError('bad input')
    res = run_in_worker(raises, spec, params, 'meshops.cilium.x')
    assert res['failed'] is True and res['msg'] == 'mesh-1: bad input'

    def writes_then_breaks(m):
        m.wrote('Secret kube-system/x (created)', recover='delete it')
        # a module's own "except Exception" does not take an exit for an error (a BaseException, as SystemExit)
        try:
            m.fail('after the write')
        except Exception:  # pylint: disable=broad-except
            raise AssertionError('the exit was taken for an error')
    res = run_in_worker(writes_then_breaks, spec, params, 'meshops.cilium.x')
    assert res['failed'] is True and res['changed'] is True and res['written'] == ['Secret kube-system/x (created)']
    assert res['msg'].startswith('mesh-1: after the write. This run had already written Secret kube-system/x')

    res = run_in_worker(lambda m: None, spec, params, 'meshops.cilium.x')
    assert res['failed'] is True and 'returned no result' in res['msg']

    def bug(m):
        raise KeyError('k')
    with pytest.raises(KeyError):
        run_in_worker(bug, spec, params, 'meshops.cilium.x')
