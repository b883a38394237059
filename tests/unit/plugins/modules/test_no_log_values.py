# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0
"""Secrets inside free-form options never reach syslog, the invocation block or a result.

These run the modules' real exit_json/fail_json (no patching) with
``_ansible_inject_invocation`` so the module arguments are echoed as ansible-playbook
-vvv and ANSIBLE_INJECT_INVOCATION=1 would show them, and capture what
AnsibleModule logs (``Invoked with ...``).
"""

import base64
import json

import pytest

from ansible.module_utils import basic
from ansible.module_utils.common.parameters import PASS_VARS

from module_runner import set_module_args

from ansible_collections.meshops.cilium.plugins.module_utils.base import ClusterModule
from ansible_collections.meshops.cilium.plugins.modules import cilium_install, clustermesh_preflight

CA_KEY = 'UExBTlRFRC1DQS1LRVktZm9yLXVuaXQtdGVzdHM='
SRV_KEY = 'planted-apiserver-server-key-0001'
CA_KEY2 = 'planted-caKey-value-0002'
PASSWORD = 'planted-password-0003'
TOKEN = 'planted-token-0004'
EXEC_ENV = 'planted-exec-env-0005'
AP_SECRET = 'planted-auth-provider-0006'
PROXY_PW = 'planted-proxy-pw-0007'
REPO_PW = 'planted-repo-pw-0008'
PLANTED = [CA_KEY, SRV_KEY, CA_KEY2, PASSWORD, TOKEN, EXEC_ENV, AP_SECRET, PROXY_PW, REPO_PW]


def _absent(text):
    """The planted strings (and their base64) that ``text`` holds; [] when none."""
    found = []
    for s in PLANTED:
        if s in text or base64.b64encode(s.encode()).decode() in text:
            found.append(s[:12] + '...')  # never print a whole secret
    return found


@pytest.fixture
def logged(monkeypatch):
    """What AnsibleModule.log was asked to write to syslog/journal."""
    lines = []

    def log(self, msg, log_args=None):
        lines.append('%s %r' % (msg, log_args))
    monkeypatch.setattr(basic.AnsibleModule, 'log', log)
    return lines


def _kubeconfig(apiserver):
    cfg = apiserver.kubeconfig('mesh-1', token=TOKEN)
    cfg['clusters'][0]['cluster']['proxy-url'] = 'http://px:%s@127.0.0.1:9' % PROXY_PW
    cfg['clusters'].append({'name': 'other', 'cluster': {'server': 'https://other.invalid:6443'}})
    cfg['users'].append({'name': 'eks', 'user': {'exec': {
        'apiVersion': 'client.authentication.k8s.io/v1beta1', 'command': 'aws',
        'env': [{'name': 'AWS_SECRET_ACCESS_KEY', 'value': EXEC_ENV}]}}})
    cfg['users'].append({'name': 'oidc', 'user': {'auth-provider': {'name': 'oidc', 'config': {
        'client-secret': AP_SECRET, 'idp-issuer-url': 'https://issuer.invalid'}}}})
    # the proxy is never used: the current context's cluster is mesh-1 without it
    del cfg['clusters'][0]['cluster']['proxy-url']
    cfg['clusters'][1]['cluster']['proxy-url'] = 'http://px:%s@127.0.0.1:9' % PROXY_PW
    return cfg


def _values():
    return {
        'tls': {'ca': {'cert': 'UFVCTElDLUNFUlQ=', 'key': CA_KEY}},
        'clustermesh': {'apiserver': {'tls': {'server': {'cert': 'Yw==', 'key': SRV_KEY}}}},
        'certgen': {'caKey': CA_KEY2},
        'extra': [{'deep': {'password': PASSWORD}}],
    }


def _run(main, monkeypatch, capsys, args):
    args = dict(args, _ansible_verbosity=3, _ansible_diff=True)
    if 'inject_invocation' in PASS_VARS:  # ansible-core >= 2.19; 2.18 always returns the invocation
        args['_ansible_inject_invocation'] = True
    set_module_args(monkeypatch, args)
    with pytest.raises(SystemExit):
        main()
    out = capsys.readouterr().out
    return out, json.loads(out)


def test_cilium_install_values_and_inline_kubeconfig_never_logged_or_echoed(apiserver, monkeypatch, capsys, logged):
    out, res = _run(cilium_install.main, monkeypatch, capsys, {
        'kubeconfig': _kubeconfig(apiserver), 'values': _values(), 'cluster_name': 'mesh-1', 'cluster_id': 1})
    assert res['failed'] is True  # not installed and no chart_ref
    assert logged and 'Invoked' in logged[0]
    assert _absent(out) == []
    assert _absent('\n'.join(logged)) == []
    # the invocation block is there and masked, names stay readable
    args = res['invocation']['module_args']
    assert args['values']['tls']['ca']['cert'] == 'UFVCTElDLUNFUlQ='
    assert args['values']['tls']['ca']['key'] != CA_KEY
    assert args['kubeconfig']['current-context'] == 'mesh-1'


def test_secrets_registered_before_the_invocation_is_logged(apiserver, monkeypatch):
    seen = []

    def log(self, msg, log_args=None):
        seen.append(set(self.no_log_values))
    monkeypatch.setattr(basic.AnsibleModule, 'log', log)
    set_module_args(monkeypatch, {'kubeconfig': _kubeconfig(apiserver), 'values': _values()})
    ClusterModule(dict(values=dict(type='dict')))
    assert seen, 'AnsibleModule logged nothing'
    assert {CA_KEY, SRV_KEY, CA_KEY2, PASSWORD, TOKEN, EXEC_ENV, AP_SECRET, PROXY_PW} <= seen[0]


def test_option_validation_failure_hides_values(monkeypatch, capsys, logged):
    """fail_json inside AnsibleModule.__init__ (an unknown option) comes before _log_invocation."""
    out, res = _run(cilium_install.main, monkeypatch, capsys, {
        'values': _values(), 'no_such_option': 1, 'chart_repo_url': 'https://me:%s@charts.invalid/x' % REPO_PW})
    assert res['failed'] is True and 'no_such_option' in res['msg']
    assert _absent(out) == []


def test_preflight_secrets_in_info_hidden(monkeypatch, capsys, logged):
    """clustermesh_preflight is a plain module (no cluster) with a free-form ``info`` dict."""
    info = {'values': _values(), 'kubeconfig': {'users': [{'name': 'u', 'user': {'token': TOKEN}}]}}
    out, res = _run(clustermesh_preflight.main, monkeypatch, capsys, {
        'clusters': [{'host': 'a', 'cluster_name': 'mesh-1', 'cluster_id': 1, 'info': info},
                     {'host': 'b', 'cluster_name': 'mesh-1', 'cluster_id': 1, 'info': info}]})
    assert res['errors'] >= 1  # the same name and ID twice
    assert logged and 'Invoked' in logged[0]
    assert _absent(out) == []
    assert _absent('\n'.join(logged)) == []


def test_chart_repo_url_with_credentials_refused_before_connecting(monkeypatch, capsys, logged):
    """Refused before anything runs: the kubeconfig path does not exist and is never read."""
    out, res = _run(cilium_install.main, monkeypatch, capsys, {
        'kubeconfig': '/nonexistent/kubeconfig', 'chart_ref': 'cilium', 'cluster_name': 'mesh-1', 'cluster_id': 1,
        'chart_repo_url': 'https://me:%s@charts.invalid/cilium' % REPO_PW})
    assert res['failed'] is True
    assert 'helm repo add' in res['msg'] and 'kubeconfig' not in res['msg']
    assert _absent(out) == [] and _absent('\n'.join(logged)) == []


def test_warnings_errors_and_diffs_masked(apiserver, monkeypatch, capsys, logged):
    """A secret of the options echoed by a warning or a diff (even under a harmless key) is masked."""
    def main():
        m = ClusterModule(dict(values=dict(type='dict')))
        m.warn('value was %s' % CA_KEY)
        m.exit(changed=True, before={'copy': SRV_KEY}, after=m.params['values'], note='token %s' % TOKEN)
    out, res = _run(main, monkeypatch, capsys, {'kubeconfig': _kubeconfig(apiserver), 'values': _values()})
    assert res['changed'] is True and 'diff' in res and res['warnings']
    assert _absent(out) == []

    def failing():
        m = ClusterModule(dict(values=dict(type='dict')))
        m.fail('cannot use %s' % PASSWORD)
    out, res = _run(failing, monkeypatch, capsys, {'kubeconfig': _kubeconfig(apiserver), 'values': _values()})
    assert res['failed'] is True and _absent(out) == []
