# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0
"""Every module_utils error becomes one failure in ClusterModule.run: cluster name first, one line,
no traceback."""

import pytest

from module_runner import module_runner

from ansible_collections.meshops.cilium.plugins.module_utils.base import ClusterModule, run_module
from ansible_collections.meshops.cilium.plugins.module_utils.ca import CAError
from ansible_collections.meshops.cilium.plugins.module_utils.cluster import ClusterError
from ansible_collections.meshops.cilium.plugins.module_utils.errors import MeshopsError, MeshopsValueError
from ansible_collections.meshops.cilium.plugins.module_utils.helm import HelmError
from ansible_collections.meshops.cilium.plugins.module_utils.info import DecodeError
from ansible_collections.meshops.cilium.plugins.module_utils.ipsec import IPsecKeyError
from ansible_collections.meshops.cilium.plugins.module_utils.services import ServicesError
from ansible_collections.meshops.cilium.plugins.module_utils.status import ExecError, StatusParseError
from ansible_collections.meshops.cilium.plugins.module_utils.values import OptionError
from ansible_collections.meshops.cilium.plugins.modules import cilium_ca

ERRORS = [CAError, ClusterError, HelmError, DecodeError, IPsecKeyError, StatusParseError, ExecError, OptionError,
          ServicesError]


@pytest.mark.parametrize('cls', ERRORS, ids=[c.__name__ for c in ERRORS])
def test_every_error_class_has_the_one_base(cls):
    assert issubclass(cls, MeshopsError)


@pytest.mark.parametrize('cls', [CAError, DecodeError, IPsecKeyError, StatusParseError, OptionError, ServicesError])
def test_value_errors_stay_value_errors(cls):
    # parsers and option checks catch ValueError around these
    assert issubclass(cls, MeshopsValueError) and issubclass(cls, ValueError)


@pytest.mark.parametrize('cls', ERRORS, ids=[c.__name__ for c in ERRORS])
def test_run_turns_every_error_into_one_line_named_failure(apiserver, monkeypatch, cls):
    def raising(m):
        raise cls('something is wrong with the input')

    def main():
        ClusterModule(argument_spec={}).run(raising)

    ok, res = module_runner(monkeypatch, main)({'kubeconfig': apiserver.kubeconfig('mesh-1')})
    assert not ok
    assert res['msg'] == 'mesh-1: something is wrong with the input'
    assert res['cluster'] == 'mesh-1'
    assert 'exception' not in res


def test_run_module_is_cluster_module_run(apiserver, monkeypatch):
    # the main() of every cluster module: its argument spec and AnsibleModule options, then ClusterModule.run
    def raising(m):
        assert m.check_mode is True  # check mode is supported
        raise CAError('something is wrong with %s' % m.params['thing'])

    def main():
        run_module(raising, dict(thing=dict(type='str'), other=dict(type='str')),
                   mutually_exclusive=[('thing', 'other')])

    run = module_runner(monkeypatch, main)
    ok, res = run({'kubeconfig': apiserver.kubeconfig('mesh-1'), 'thing': 'x', '_ansible_check_mode': True})
    assert not ok
    assert res['msg'] == 'mesh-1: something is wrong with x'
    assert 'exception' not in res
    ok, res = run({'kubeconfig': apiserver.kubeconfig('mesh-1'), 'thing': 'x', 'other': 'y'})
    assert not ok and 'mutually exclusive' in res['msg']


def test_cilium_ca_validity_days_zero_is_one_line_without_traceback(apiserver, monkeypatch):
    ok, res = module_runner(monkeypatch, cilium_ca.main)({'kubeconfig': apiserver.kubeconfig('mesh-1'),
                                                         'validity_days': 0})
    assert not ok
    assert res['msg'] == ('mesh-1: validity_days must be a whole number of days from 1 to 36500 (100 years), '
                          'got 0')
    assert '\n' not in res['msg'] and 'exception' not in res
    assert apiserver.requests == []
