# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0
"""deploy/rbac/*.yaml: every rule is as narrow as RBAC allows, and the exceptions are the
documented ones (docs/rbac.md)."""

import os
import re

import pytest
import yaml

from ansible_collections.meshops.cilium.plugins.module_utils import info, ipsec, status

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
RBAC = os.path.join(REPO, 'deploy', 'rbac')
BASE, EXEC, TRAFFIC = 'meshops-automation.yaml', 'meshops-automation-status-exec.yaml', \
    'meshops-automation-traffic-check.yaml'
CILIUM_NS = 'kube-system'
TRAFFIC_NS = 'meshops-traffic-check'
USER = 'meshops-automation'
NAMED = {'get', 'update', 'patch', 'delete'}
# Kinds whose objects in the Cilium namespace must only be reachable by name.
SENSITIVE = {'secrets', 'configmaps', 'services', 'serviceaccounts', 'daemonsets', 'deployments'}
RELEASE_RECORD = re.compile(r'sh\.helm\.release\.v1\.cilium\.v([1-9][0-9]*)\Z')
MAX_REVISION = 1000  # docs/rbac.md; hack/rbac_manifest.py MAX_REVISION


def _load(name):
    with open(os.path.join(RBAC, name)) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    assert len(docs) == 1 and docs[0]['kind'] == 'List', '%s: one List document' % name
    return docs[0]['items']


@pytest.fixture(scope='module')
def manifests():
    if not os.path.isdir(RBAC):
        pytest.skip('deploy/rbac is not part of this tree')
    return dict((n, _load(n)) for n in (BASE, EXEC, TRAFFIC))


def _rules(objs, kind=None, namespace=None):
    for o in objs:
        if o['kind'] not in ('Role', 'ClusterRole') or (kind and o['kind'] != kind):
            continue
        if namespace and o['metadata'].get('namespace') != namespace:
            continue
        for rule in o['rules']:
            yield o, rule


def _all_rules(manifests):
    for name, objs in manifests.items():
        for o, rule in _rules(objs):
            yield name, o, rule


def test_no_wildcards_anywhere(manifests):
    for name, o, rule in _all_rules(manifests):
        for field in ('apiGroups', 'resources', 'verbs', 'resourceNames', 'nonResourceURLs'):
            assert '*' not in ''.join(rule.get(field) or []), (name, o['metadata']['name'], rule)
        assert 'nonResourceURLs' not in rule


def test_sensitive_kinds_in_the_cilium_namespace_are_read_and_written_by_name_only(manifests):
    for name, o, rule in _all_rules(manifests):
        if o['kind'] == 'Role' and o['metadata']['namespace'] != CILIUM_NS:
            continue
        hit = SENSITIVE & set(rule['resources'])
        if hit and NAMED & set(rule['verbs']):
            assert rule.get('resourceNames'), (name, o['metadata']['name'], rule)


def test_rules_without_names_only_carry_verbs_that_cannot_be_named(manifests):
    """create and list cannot be limited by name; escalate is checked without the name on create.
    The other exceptions are the optional Roles' documented ones."""
    allowed = {
        (BASE, 'ClusterRole'): {('nodes', 'list'), ('namespaces', 'create'), ('clusterroles', 'create'),
                                ('clusterrolebindings', 'create'), ('roles', 'create'), ('rolebindings', 'create'),
                                ('clusterroles', 'escalate'), ('roles', 'escalate')},
        (BASE, 'Role'): {('secrets', 'create'), ('secrets', 'list'), ('configmaps', 'create'),
                         ('services', 'create'), ('serviceaccounts', 'create'), ('daemonsets', 'create'),
                         ('deployments', 'create')},
        (EXEC, 'Role'): {('pods', 'list'), ('pods/exec', 'create'), ('pods/exec', 'get'), ('pods/proxy', 'get')},
    }
    for name, o, rule in _all_rules(manifests):
        if rule.get('resourceNames'):
            continue
        if name == TRAFFIC and o['kind'] == 'Role':
            assert o['metadata']['namespace'] == TRAFFIC_NS  # the check's own Namespace only
            continue
        got = set((r, v) for r in rule['resources'] for v in rule['verbs'])
        assert got <= allowed[(name, o['kind'])], (name, o['metadata']['name'], got - allowed[(name, o['kind'])])


def test_cluster_roles_grant_no_namespaced_workload_or_secret(manifests):
    """A ClusterRoleBinding would grant them in every namespace."""
    for name, o, rule in _all_rules(manifests):
        if o['kind'] == 'ClusterRole':
            assert not ((SENSITIVE | {'pods', 'pods/exec', 'pods/proxy', 'pods/log', 'jobs'}) & set(rule['resources'])), rule


def test_exec_and_traffic_needs_are_only_in_the_optional_roles(manifests):
    for name, o, rule in _all_rules(manifests):
        res = set(rule['resources'])
        if res & {'pods/exec', 'pods/proxy'} or 'pods' in res and name != TRAFFIC:
            assert name == EXEC, (name, rule)
        if res & {'jobs', 'jobs/status', 'pods/log'}:
            assert name == TRAFFIC and o['metadata']['namespace'] == TRAFFIC_NS, (name, rule)
    traffic_ns = [o for o in manifests[TRAFFIC] if o['kind'] == 'Namespace']
    assert [n['metadata']['name'] for n in traffic_ns] == [TRAFFIC_NS]
    # the provided Namespace must not look created by the check, or state=absent would delete it
    assert 'app.kubernetes.io/part-of' not in (traffic_ns[0]['metadata'].get('labels') or {})
    for o, rule in _rules(manifests[TRAFFIC], 'ClusterRole'):
        assert rule == {'apiGroups': [''], 'resources': ['namespaces'], 'resourceNames': [TRAFFIC_NS],
                        'verbs': ['get']}


def test_release_records_are_listed_one_by_one_up_to_the_documented_bound(manifests):
    records = [rule for o, rule in _rules(manifests[BASE], 'Role')
               if any(RELEASE_RECORD.match(n) for n in rule.get('resourceNames') or [])]
    assert len(records) == 1
    rule = records[0]
    assert rule['resources'] == ['secrets'] and set(rule['verbs']) == NAMED
    revisions = [int(RELEASE_RECORD.match(n).group(1)) for n in rule['resourceNames']]
    assert revisions == list(range(1, MAX_REVISION + 1))
    # ... and no other Secret rule names a release record (they are only in that labelled Role)
    for o, other in _rules(manifests[BASE]):
        if other is not rule:
            assert not any(RELEASE_RECORD.match(n) for n in other.get('resourceNames') or [])


def _named(objs, resource, verbs, namespace=CILIUM_NS):
    names = set()
    for o, rule in _rules(objs):
        if o['kind'] == 'Role' and o['metadata']['namespace'] != namespace:
            continue
        if resource in rule['resources'] and set(verbs) <= set(rule['verbs']):
            names.update(rule.get('resourceNames') or [])
    return names


def test_the_objects_our_modules_read_and_write_are_named(manifests):
    base = manifests[BASE]
    assert {info.CILIUM_CA, ipsec.SECRET_NAME, status.CLUSTERMESH_SECRET} <= _named(base, 'secrets', NAMED)
    assert info.CILIUM_CONFIG in _named(base, 'configmaps', ['get'])
    assert info.APISERVER_SERVICE in _named(base, 'services', ['get'])
    assert status.APISERVER in _named(base, 'deployments', ['get'])
    assert {'cilium'} <= _named(base, 'daemonsets', ['get'])
    assert {'cilium-operator'} <= _named(base, 'deployments', ['get'])


def test_every_role_is_bound_to_the_automation_user_in_its_own_file(manifests):
    for name, objs in manifests.items():
        roles = set((o['kind'], o['metadata']['name'], o['metadata'].get('namespace'))
                    for o in objs if o['kind'] in ('Role', 'ClusterRole'))
        bound = set()
        for b in objs:
            if b['kind'] in ('RoleBinding', 'ClusterRoleBinding'):
                assert b['subjects'] == [{'apiGroup': 'rbac.authorization.k8s.io', 'kind': 'User', 'name': USER}]
                ns = b['metadata'].get('namespace') if b['roleRef']['kind'] == 'Role' else None
                bound.add((b['roleRef']['kind'], b['roleRef']['name'], ns))
        assert roles == bound, name


def test_the_generated_block_is_current():
    """hack/rbac_manifest.py writes the release record names; the manifest holds its output."""
    try:
        import sys
        sys.path.insert(0, REPO)
        from hack import rbac_manifest
    except ImportError:
        pytest.skip('hack/ is not part of this tree')
    assert rbac_manifest.MAX_REVISION == MAX_REVISION
    with open(os.path.join(RBAC, BASE)) as f:
        text = f.read()
    assert rbac_manifest.with_records(text) == text, 'run python -m hack.rbac_manifest records --write'
