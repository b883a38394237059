# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0
"""module_utils/services.py: the mesh-wide plan of global Services, the policy cluster-name finder, and the
per-cluster write plans."""

import pytest

from ansible_collections.meshops.cilium.plugins.module_utils.services import (
    AFFINITY_ANNOTATION,
    GLOBAL_ANNOTATION,
    OWNER_LABEL,
    OWNER_VALUE,
    SHARED_ANNOTATION,
    ServicesError,
    mesh_check,
    plan_policies,
    plan_services,
    policy_cluster_names,
    policy_desired,
    policy_plan,
    service_object,
    service_plan,
)

MEMBERS = ['mesh-1', 'mesh-2', 'mesh-3']


def echo(**kw):
    spec = {'name': 'echo', 'namespace': 'demo', 'selector': {'app': 'echo'},
            'ports': [{'name': 'http', 'port': 80, 'targetPort': 8080}]}
    spec.update(kw)
    return spec


def one_problem(specs):
    plan, problems, dummy = plan_services(MEMBERS, specs)
    assert len(problems) == 1, problems
    return problems[0]


def test_plan_places_the_service_on_every_member_with_per_cluster_annotations():
    plan, problems, warnings = plan_services(MEMBERS, [echo(affinity={'mesh-1': 'local', 'mesh-2': 'remote'},
                                                            shared={'mesh-3': False})])
    assert problems == [] and warnings == []
    assert sorted(plan) == MEMBERS
    annotations = dict((c, plan[c][0]['metadata']['annotations']) for c in MEMBERS)
    assert annotations['mesh-1'] == {GLOBAL_ANNOTATION: 'true', AFFINITY_ANNOTATION: 'local'}
    assert annotations['mesh-2'] == {GLOBAL_ANNOTATION: 'true', AFFINITY_ANNOTATION: 'remote'}
    assert annotations['mesh-3'] == {GLOBAL_ANNOTATION: 'true', SHARED_ANNOTATION: 'false'}
    svc = plan['mesh-1'][0]
    assert svc['metadata']['labels'] == {OWNER_LABEL: OWNER_VALUE}
    assert svc['spec'] == {'type': 'ClusterIP', 'selector': {'app': 'echo'},
                           'ports': [{'name': 'http', 'port': 80, 'protocol': 'TCP', 'targetPort': 8080}]}


def test_clusters_limits_the_placement():
    plan, problems, dummy = plan_services(MEMBERS, [echo(clusters=['mesh-1', 'mesh-2'])])
    assert problems == [] and plan['mesh-3'] == [] and len(plan['mesh-2']) == 1


@pytest.mark.parametrize('value', ['Local', 'locale', 'preferred', ''])
def test_unknown_affinity_names_cluster_service_and_field(value):
    msg = one_problem([echo(affinity={'mesh-2': value})])
    assert 'cluster mesh-2' in msg and 'Service demo/echo' in msg and 'field affinity' in msg and repr(value) in msg


@pytest.mark.parametrize('value', ['yes', 1, 'treu', ['true']])
def test_shared_not_a_bool_names_cluster_service_and_field(value):
    plan, problems, dummy = plan_services(MEMBERS, [echo(shared=value)])
    assert len(problems) == 3  # one per cluster it is placed on
    for cluster, msg in zip(MEMBERS, problems):
        assert 'cluster %s, Service demo/echo: field shared' % cluster in msg


@pytest.mark.parametrize('value', [True, False, 'true', 'False'])
def test_shared_accepts_bools_and_their_strings(value):
    plan, problems, dummy = plan_services(MEMBERS, [echo(shared=value)])
    assert problems == []
    assert plan['mesh-1'][0]['metadata']['annotations'][SHARED_ANNOTATION] == str(value).lower()


def test_cluster_not_in_the_mesh():
    msg = one_problem([echo(clusters=['mesh-1', 'mesh-9'])])
    assert msg.startswith('cluster mesh-9, Service demo/echo: field clusters') and 'mesh-1, mesh-2, mesh-3' in msg


def test_per_cluster_value_for_a_cluster_the_service_is_not_on():
    msg = one_problem([echo(clusters=['mesh-1', 'mesh-2'], affinity={'mesh-3': 'local'})])
    assert 'cluster mesh-3, Service demo/echo: field affinity' in msg


def test_ports_that_differ_across_clusters():
    msg = one_problem([echo(clusters=['mesh-1', 'mesh-2']),
                       echo(clusters=['mesh-3'], ports=[{'name': 'http', 'port': 8080}])])
    assert 'cluster mesh-3, Service demo/echo: field ports differs from cluster mesh-1' in msg


def test_namespace_that_differs_across_clusters():
    msg = one_problem([echo(clusters=['mesh-1', 'mesh-2']), echo(clusters=['mesh-3'], namespace='other')])
    assert 'Service echo: field namespace differs' in msg
    assert 'namespace demo on mesh-1, mesh-2' in msg and 'namespace other on mesh-3' in msg


def test_two_services_of_one_name_in_two_namespaces_on_the_same_clusters_are_fine():
    plan, problems, dummy = plan_services(MEMBERS, [echo(), echo(namespace='other')])
    assert problems == [] and len(plan['mesh-1']) == 2


def test_defined_twice_for_a_cluster():
    msg = one_problem([echo(), echo(clusters=['mesh-2'])])
    assert 'cluster mesh-2, Service demo/echo: defined twice' in msg


@pytest.mark.parametrize('ports, field', [
    ([], 'field ports'),
    ([{'port': 0}], 'field ports[0].port'),
    ([{'port': 80, 'protocol': 'tcp'}], 'field ports[0].protocol'),
    ([{'port': 80}, {'port': 81}], 'every port needs a name'),
    ([{'port': 80, 'name': 'a'}, {'port': 80, 'name': 'b'}], 'same port and protocol twice'),
])
def test_bad_ports(ports, field):
    plan, problems, dummy = plan_services(['mesh-1'], [echo(ports=ports)])
    assert len(problems) == 1 and problems[0].startswith('cluster mesh-1, Service demo/echo: ') and field in problems[0]


def test_bad_type_and_selector():
    plan, problems, dummy = plan_services(['mesh-1'], [echo(type='ExternalName', selector='app=echo')])
    assert len(problems) == 2
    assert 'field type' in problems[0] and 'field selector' in problems[1]


def test_warnings_for_legal_but_useless_set_ups():
    dummy, problems, warnings = plan_services(MEMBERS, [echo(clusters=['mesh-1'])])
    assert problems == [] and 'one cluster only' in warnings[0]
    dummy, problems, warnings = plan_services(MEMBERS, [echo(shared=False)])
    assert problems == [] and 'shared is false on every cluster' in warnings[0]
    dummy, problems, warnings = plan_services(MEMBERS, [echo(affinity={'mesh-1': 'remote'},
                                                             shared={'mesh-2': False, 'mesh-3': False})])
    assert problems == [] and warnings == [
        'cluster mesh-1, Service demo/echo: field affinity is remote but no other cluster shares its backends '
        '(shared false)']


def test_no_members_or_no_list():
    assert plan_services([], [echo()])[1] == ['the mesh has no members: set the member list (cluster names of the mesh)']
    assert 'must be a list' in plan_services(MEMBERS, {'name': 'echo'})[1][0]


# -- policies -------------------------------------------------------------------
def cnp(spec):
    return {'apiVersion': 'cilium.io/v2', 'kind': 'CiliumNetworkPolicy',
            'metadata': {'name': 'p', 'namespace': 'demo'}, 'spec': spec}


def test_policy_finder_sees_match_labels_expressions_and_prefixes():
    policy = cnp({
        'endpointSelector': {'matchLabels': {'app': 'echo', 'io.cilium.k8s.policy.cluster': 'mesh-1'}},
        'ingress': [{'fromEndpoints': [
            {'matchLabels': {'k8s:io.cilium.k8s.policy.cluster': 'mesh-2'}},
            {'matchExpressions': [
                {'key': 'io.cilium.k8s.policy.cluster', 'operator': 'In', 'values': ['mesh-3', 'mesh-4']},
                {'key': 'any:io.cilium.k8s.policy.cluster', 'operator': 'NotIn', 'values': ['mesh-5']},
                {'key': 'io.cilium.k8s.policy.cluster', 'operator': 'Exists'},
                {'key': 'app', 'operator': 'In', 'values': ['not-a-cluster']},
            ]}]}],
        'egress': [{'toEndpoints': [{'matchLabels': {'k8s:app': 'mesh-9', 'xk8s:io.cilium.k8s.policy.cluster': 'x'}}]}],
    })
    assert policy_cluster_names(policy) == [
        ('spec.endpointSelector.matchLabels', 'mesh-1'),
        ('spec.ingress[0].fromEndpoints[0].matchLabels', 'mesh-2'),
        ('spec.ingress[0].fromEndpoints[1].matchExpressions[0]', 'mesh-3'),
        ('spec.ingress[0].fromEndpoints[1].matchExpressions[0]', 'mesh-4'),
        ('spec.ingress[0].fromEndpoints[1].matchExpressions[1]', 'mesh-5'),
    ]


def test_policy_finder_reads_specs_lists_of_a_clusterwide_policy():
    policy = {'kind': 'CiliumClusterwideNetworkPolicy', 'metadata': {'name': 'c'},
              'specs': [{'endpointSelector': {}, 'ingress': [{'fromEndpoints': [
                  {'matchLabels': {'io.cilium.k8s.policy.cluster': 'mesh-2'}}]}]}]}
    assert policy_cluster_names(policy) == [('specs[0].ingress[0].fromEndpoints[0].matchLabels', 'mesh-2')]


def test_plan_policies_reports_unknown_clusters_apart_and_bad_shapes():
    good = cnp({'endpointSelector': {}, 'ingress': [{'fromEndpoints': [
        {'matchLabels': {'io.cilium.k8s.policy.cluster': 'mesh-7'}}]}]})
    bad = {'kind': 'NetworkPolicy', 'metadata': {'name': 'np', 'namespace': 'demo'}, 'spec': {}}
    plan, problems, unknown = plan_policies(MEMBERS, [{'definition': good, 'clusters': ['mesh-1']},
                                                      {'definition': bad, 'clusters': ['mesh-2', 'mesh-8']}])
    assert plan['mesh-1'] == [good] and plan['mesh-2'] == []
    assert unknown == ['cluster mesh-1, CiliumNetworkPolicy demo/p: field spec.ingress[0].fromEndpoints[0].matchLabels '
                       'selects cluster mesh-7, which is not in the mesh (members: mesh-1, mesh-2, mesh-3); the rule '
                       'matches nothing']
    assert problems[0].startswith('cluster mesh-2, NetworkPolicy demo/np: field kind must be one of')
    assert problems[1].startswith('cluster mesh-8, NetworkPolicy demo/np: field clusters names a cluster that is not')


def test_mesh_check_gives_module_options_per_cluster():
    out = mesh_check([echo(affinity='local')], [], MEMBERS)
    assert out['problems'] == [] and out['policies'] == {'mesh-1': [], 'mesh-2': [], 'mesh-3': []}
    assert out['services']['mesh-2'] == [{
        'name': 'echo', 'namespace': 'demo', 'type': 'ClusterIP', 'selector': {'app': 'echo'}, 'affinity': 'local',
        'shared': None, 'ports': [{'name': 'http', 'port': 80, 'protocol': 'TCP', 'targetPort': 8080}]}]


# -- one cluster's write plan ---------------------------------------------------
def live(wanted, **changes):
    """``wanted`` as the API server returns it (defaults filled in, allocated fields, foreign labels)."""
    obj = {'apiVersion': 'v1', 'kind': 'Service',
           'metadata': {'name': wanted['metadata']['name'], 'namespace': wanted['metadata']['namespace'],
                        'resourceVersion': '7', 'labels': dict(wanted['metadata']['labels'], team='a'),
                        'annotations': dict(wanted['metadata']['annotations'], other='x')},
           'spec': dict(wanted['spec'], clusterIP='10.96.0.10', sessionAffinity='None',
                        ports=[dict(p) for p in wanted['spec']['ports']]),
           'status': {'loadBalancer': {}}}
    for k, v in changes.items():
        obj[k] = v
    return obj


def test_service_plan_create_unchanged_update():
    wanted = service_object(echo(affinity='local'), 'mesh-1')
    assert service_plan(None, wanted, 'present', False, 'mesh-1')[0] == 'created'
    assert service_plan(live(wanted), wanted, 'present', False, 'mesh-1')[:2] == ('unchanged', None)
    other = service_object(echo(affinity='remote'), 'mesh-1')
    action, body, before, after = service_plan(live(wanted), other, 'present', False, 'mesh-1')
    assert action == 'updated'
    assert body['metadata']['annotations'] == {GLOBAL_ANNOTATION: 'true', AFFINITY_ANNOTATION: 'remote', 'other': 'x'}
    assert body['metadata']['labels']['team'] == 'a' and body['spec']['clusterIP'] == '10.96.0.10'
    assert body['metadata']['resourceVersion'] == '7' and 'status' not in body
    assert before['metadata']['annotations'][AFFINITY_ANNOTATION] == 'local'
    assert after['metadata']['annotations'][AFFINITY_ANNOTATION] == 'remote'


def test_service_plan_removes_an_annotation_it_owns_and_keeps_an_allocated_node_port():
    wanted = service_object(echo(type='NodePort', affinity='local'), 'mesh-1')
    current = live(wanted)
    current['spec']['ports'][0]['nodePort'] = 31234
    assert service_plan(current, wanted, 'present', False, 'mesh-1')[0] == 'unchanged'
    plain = service_object(echo(type='NodePort'), 'mesh-1')
    action, body, dummy, dummy2 = service_plan(current, plain, 'present', False, 'mesh-1')
    assert action == 'updated' and AFFINITY_ANNOTATION not in body['metadata']['annotations']
    assert body['spec']['ports'][0]['nodePort'] == 31234


def test_service_plan_refuses_a_foreign_service_naming_cluster_field_and_conflicts():
    wanted = service_object(echo(), 'mesh-2')
    foreign = live(wanted)
    foreign['metadata']['labels'] = {'app': 'echo'}
    foreign['spec']['type'] = 'NodePort'
    with pytest.raises(ServicesError) as e:
        service_plan(foreign, wanted, 'present', False, 'mesh-2')
    msg = str(e.value)
    assert msg.startswith('cluster mesh-2, Service demo/echo: field metadata.labels: ')
    assert 'type is NodePort, wanted ClusterIP' in msg and 'force=true' in msg
    with pytest.raises(ServicesError):
        service_plan(foreign, wanted, 'absent', False, 'mesh-2')
    action, body, dummy, dummy2 = service_plan(foreign, wanted, 'present', True, 'mesh-2')
    assert action == 'updated' and body['metadata']['labels'][OWNER_LABEL] == OWNER_VALUE
    assert service_plan(foreign, wanted, 'absent', True, 'mesh-2')[0] == 'deleted'


def test_policy_plan_compares_only_owned_fields():
    wanted = policy_desired(cnp({'endpointSelector': {'matchLabels': {'app': 'echo'}}}), 'default')
    assert wanted['metadata']['labels'] == {OWNER_LABEL: OWNER_VALUE}
    current = dict(wanted, status={'ok': True}, metadata=dict(wanted['metadata'], uid='u', labels=dict(
        wanted['metadata']['labels'], extra='y')))
    assert policy_plan(current, wanted, 'present', False, 'mesh-1')[0] == 'unchanged'
    changed = policy_desired(cnp({'endpointSelector': {'matchLabels': {'app': 'other'}}}), 'default')
    action, body, dummy, dummy2 = policy_plan(current, changed, 'present', False, 'mesh-1')
    assert action == 'updated' and body['spec'] == changed['spec'] and body['metadata']['labels']['extra'] == 'y'
    foreign = dict(current, metadata={'name': 'p', 'namespace': 'demo'})
    with pytest.raises(ServicesError, match='^cluster mesh-1, CiliumNetworkPolicy demo/p: field metadata.labels'):
        policy_plan(foreign, wanted, 'present', False, 'mesh-1')
