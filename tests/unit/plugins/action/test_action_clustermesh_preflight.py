# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0
"""The action plugin of clustermesh_preflight in a real play: with the local connection the answer is given
on the controller (no module process: none leaves its AnsiballZ file behind) and is
exactly what the module's own run gives for the same options, warnings, failure and masked secrets
included; options that do not validate run the module, which reports them."""

import json
import os
import sys

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.meshops.cilium.plugins.module_utils.preflight import PREFLIGHT_ARGUMENT_SPEC, run_preflight

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'modules'))

from test_clustermesh_preflight import cluster  # noqa: E402  pylint: disable=wrong-import-position

SECRET = 'Hunter2-not-a-name'


def direct(args):
    """What run_preflight gives for ``args`` (the module's own run), without the play."""
    return run_preflight(ArgumentSpecValidator(PREFLIGHT_ARGUMENT_SPEC).validate(args).validated_parameters)


def test_the_controller_answers_as_the_module_would(tmp_path, play_results):
    good = {'clusters': [cluster(1), cluster(2)], 'ca_source': 'mesh-1'}
    warned = {'clusters': [cluster(1, service_cidrs=['10.96.0.0/12']), cluster(2, service_cidrs=['10.96.0.0/12'])]}
    # an invalid cluster name that is also a secret of the options (a password in the values): masked
    bad = {'clusters': [cluster(1, cluster_name=SECRET, values={'auth': {'password': SECRET}}),
                        cluster(2, cluster_id='0')]}
    # an installed release whose datapath values this run keeps: the review compares the play's strings (tagged
    # on the controller) with the description's; the module, given plain JSON, finds nothing to refuse
    install = {'routing_mode': 'tunnel', 'tunnel_protocol': 'vxlan', 'default_options': ['routing_mode', 'tunnel_protocol'],
               'existing_values': 'refuse', 'cluster_name': 'mesh-1', 'cluster_id': 1}
    info = {'installed': True, 'cluster_name': 'mesh-1', 'cluster_id': 1, 'nodes': [], 'pod_cidrs': [],
            'release': {'name': 'cilium', 'namespace': 'kube-system', 'chart_version': '1.19.2', 'status': 'deployed',
                        'datapath_values': {'routingMode': 'tunnel', 'tunnelProtocol': 'vxlan'}}}
    # the description as a module gives it back: decoded JSON (plain str), not the play's own (tagged) strings
    kept = {'clusters': [cluster(1, install=install, info="{{ '%s' | from_json }}" % json.dumps(info))]}
    results = play_results('meshops.cilium.clustermesh_preflight',
                           [('good', good), ('warned', warned), ('bad', bad), ('kept', kept),
                            ('invalid', {'clusters': [{'cluster_id': 1}]})],
                           # every module process leaves its AnsiballZ file here
                           env={'ANSIBLE_KEEP_REMOTE_FILES': '1', 'ANSIBLE_REMOTE_TMP': str(tmp_path / 'remote')})
    started = [f for dummy, dummy, files in os.walk(str(tmp_path / 'remote')) for f in files
               if f == 'AnsiballZ_clustermesh_preflight.py']
    assert len(started) == 2  # only 'invalid' (normal and check mode): the module reports its options
    for check in (False, True):
        res = results['good', check]
        assert 'invocation' not in res, res  # no module process
        expected, warnings = direct(good)
        assert warnings == [] and res['failed'] is False
        for key in ('changed', 'problems', 'errors', 'warning_count', 'table', 'msg'):
            assert res[key] == expected[key], key

        res = results['warned', check]
        expected, warnings = direct(warned)
        assert 'invocation' not in res and res['failed'] is False and res['warning_count'] == 1
        assert res['problems'] == expected['problems'] and len(warnings) == 1
        assert res['warnings'] == warnings or [str(w) for w in res['warnings']] == warnings

        res = results['bad', check]
        expected, warnings = direct(bad)
        assert 'invocation' not in res and res['failed'] is True and res['errors'] == expected['errors'] >= 2
        assert res['msg'].startswith('preflight found ') and 'mesh-2' in res['msg']
        assert SECRET in expected['msg']  # the check names the value ...
        assert SECRET not in str(res)  # ... and the answer masks it, as the module does

        res = results['kept', check]
        expected, warnings = direct({'clusters': [cluster(1, install=install, info=info)]})
        assert expected['problems'] == [] and warnings == []
        assert res['failed'] is False and res['problems'] == [], res['msg']

        res = results['invalid', check]
        assert res['failed'] is True and 'missing required arguments: host' in res['msg']  # the module's report
