# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0
"""Inventory plugin meshops.cilium.kubeconfig, run by the real ansible-inventory on generated kubeconfig
files; read_cilium against the fake API server of k8s_fakes (and a closed port)."""

import json
import os
import subprocess
import sys

import pytest
import yaml

from ansible_collections.meshops.cilium.plugins.module_utils.helm import read_identity

from test_info import helm_secret_data, release  # noqa: E402  (k8s_fakes' folder is on sys.path)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
TOKEN = 'token-that-must-not-show'


def kubeconfig(*contexts, server='https://127.0.0.1:1', extra=None):
    """A kubeconfig dict: one cluster and user per context (``name`` or ``(name, cluster, user)``)."""
    cfg = {'apiVersion': 'v1', 'kind': 'Config', 'clusters': [], 'users': [], 'contexts': []}
    for c in contexts:
        name, cluster, user = c if isinstance(c, tuple) else (c, c, c)
        cfg['contexts'].append({'name': name, 'context': {'cluster': cluster, 'user': user}})
        if cluster == name:
            cfg['clusters'].append({'name': cluster, 'cluster': {'server': server}})
        if user == name:
            cfg['users'].append({'name': user, 'user': {'token': TOKEN}})
    cfg.update(extra or {})
    return cfg


@pytest.fixture
def run(tmp_path):
    collections = tmp_path / 'collections' / 'ansible_collections' / 'meshops'
    collections.mkdir(parents=True)
    (collections / 'cilium').symlink_to(REPO)

    def inventory(config, name='meshops.kubeconfig.yml', env=None, expect_ok=True, args=(), source=None,
                  playbook=None):
        """``(inventory --list as a dict or None, output)`` of ``config`` written to ``tmp_path/name`` (or of
        the inventory ``source``); with ``playbook``, ``(None, output)`` of ansible-playbook ``args`` on it."""
        path = source or tmp_path / name
        if source is None:
            path.write_text(yaml.safe_dump(config))
        environ = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(tmp_path / 'collections'), ANSIBLE_NOCOLOR='1',
                       ANSIBLE_INVENTORY_UNPARSED_FAILED='1', HOME=str(tmp_path))
        environ.pop('KUBECONFIG', None)
        environ.update(env or {})
        bindir = os.path.dirname(sys.executable)
        if playbook:
            command = [os.path.join(bindir, 'ansible-playbook'), '-i', str(path), playbook] + list(args)
        else:
            command = [os.path.join(bindir, 'ansible-inventory'), '-i', str(path), '--list'] + list(args)
        proc = subprocess.run(command, env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True, check=False, timeout=120)
        assert (proc.returncode == 0) == expect_ok, proc.stdout + proc.stderr
        assert TOKEN not in proc.stdout + proc.stderr
        if playbook:
            return None, proc.stdout + proc.stderr
        return (json.loads(proc.stdout) if proc.returncode == 0 else None), proc.stderr
    return inventory


def write(tmp_path, name, data):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return str(path)


def plain(value):
    """``value`` without ansible-inventory's marks of untrusted strings (inventory plugins' values are data,
    never templates: a context name holding ``{{`` is not templated)."""
    if isinstance(value, dict):
        if list(value) == ['__ansible_unsafe']:
            return value['__ansible_unsafe']
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def hostvars(inv):
    return plain(inv['_meta']['hostvars'])


def says(output, message):
    """Whether ``message`` is in ``output`` whatever the line wrapping (ansible-core before 2.19 wraps
    warnings and errors at 80 columns, also inside paths)."""
    return ''.join(message.split()) in ''.join(output.split())


def ansible_inventory_flushes_cache():
    """ansible-inventory has --flush-cache from ansible-core 2.19; before, ansible-playbook's refreshes the
    inventory cache."""
    from ansible.release import __version__
    return tuple(int(x) for x in __version__.split('.')[:2]) >= (2, 19)


def test_include_exclude_and_the_mesh_group(run, tmp_path):
    path = write(tmp_path, 'kc.yaml', kubeconfig('prod-1', 'prod-2', 'prod-2-canary', 'dev-1'))
    inv, dummy = run({'plugin': 'meshops.cilium.kubeconfig', 'kubeconfig': [path],
                      'include': ['prod-*'], 'exclude': ['*-canary']})
    assert sorted(inv['mesh']['hosts']) == ['prod-1', 'prod-2']
    assert hostvars(inv)['prod-2'] == {'meshops_kubeconfig': path, 'meshops_context': 'prod-2'}
    # without include every context; another group name
    inv, dummy = run({'plugin': 'meshops.cilium.kubeconfig', 'kubeconfig': [path], 'group': 'fleet'})
    assert sorted(inv['fleet']['hosts']) == ['dev-1', 'prod-1', 'prod-2', 'prod-2-canary']
    assert 'mesh' not in inv


def test_several_files_first_wins_with_a_warning_and_relative_paths(run, tmp_path):
    (tmp_path / 'sub').mkdir()
    first = write(tmp_path, 'sub/a.yaml', kubeconfig('mesh-1', 'mesh-2'))
    second = write(tmp_path, 'b.yaml', kubeconfig('mesh-2', 'mesh-3'))
    inv, err = run({'plugin': 'meshops.cilium.kubeconfig', 'kubeconfig': ['sub/a.yaml', '${MESHOPS_KC_B}']},
                   env={'MESHOPS_KC_B': second})
    assert sorted(inv['mesh']['hosts']) == ['mesh-1', 'mesh-2', 'mesh-3']
    assert {h: v['meshops_kubeconfig'] for h, v in hostvars(inv).items()} == {
        'mesh-1': first, 'mesh-2': first, 'mesh-3': second}
    assert says(err, 'kubeconfig %s: context "mesh-2" is also defined in %s, which comes first' % (second, first))


def test_default_is_the_kubeconfig_environment_variable_then_home(run, tmp_path):
    a = write(tmp_path, 'a.yaml', kubeconfig('mesh-1'))
    b = write(tmp_path, 'b.yaml', kubeconfig('mesh-2'))
    inv, dummy = run({'plugin': 'meshops.cilium.kubeconfig'}, env={'KUBECONFIG': os.pathsep.join([a, b])})
    assert {h: v['meshops_kubeconfig'] for h, v in hostvars(inv).items()} == {'mesh-1': a, 'mesh-2': b}
    (tmp_path / '.kube').mkdir()
    home = write(tmp_path, '.kube/config', kubeconfig('home-1'))
    inv, dummy = run({'plugin': 'meshops.cilium.kubeconfig'})
    assert hostvars(inv) == {'home-1': {'meshops_kubeconfig': home, 'meshops_context': 'home-1'}}


def test_compose_groups_and_keyed_groups(run, tmp_path):
    path = write(tmp_path, 'kc.yaml', kubeconfig('eu-1', 'eu-2', 'us-3'))
    inv, dummy = run({'plugin': 'meshops.cilium.kubeconfig', 'kubeconfig': [path],
                      'compose': {'cilium_cluster_id': "inventory_hostname | regex_search('[0-9]+$') | int",
                                  'region': "inventory_hostname.split('-')[0]"},
                      'groups': {'first': 'cilium_cluster_id == 1'},
                      'keyed_groups': [{'key': 'region', 'prefix': 'region'}]})
    assert {h: v['cilium_cluster_id'] for h, v in hostvars(inv).items()} == {'eu-1': 1, 'eu-2': 2, 'us-3': 3}
    assert inv['first']['hosts'] == ['eu-1']
    assert sorted(inv['region_eu']['hosts']) == ['eu-1', 'eu-2'] and inv['region_us']['hosts'] == ['us-3']


def test_the_cache_answers_until_it_is_refreshed(run, tmp_path):
    """With cache on, a second run takes the hosts from the cache (a context added since is not there);
    --flush-cache reads the kubeconfig again (ansible-inventory's from ansible-core 2.19, ansible-playbook's
    before, which also refreshes what the next ansible-inventory gets)."""
    path = write(tmp_path, 'kc.yaml', kubeconfig('mesh-1'))
    config = {'plugin': 'meshops.cilium.kubeconfig', 'kubeconfig': [path], 'cache': True,
              'cache_plugin': 'ansible.builtin.jsonfile', 'cache_connection': str(tmp_path / 'cache')}
    inv, dummy = run(config)
    assert sorted(hostvars(inv)) == ['mesh-1']
    assert os.listdir(str(tmp_path / 'cache'))
    write(tmp_path, 'kc.yaml', kubeconfig('mesh-1', 'mesh-2'))
    inv, dummy = run(config)
    assert sorted(hostvars(inv)) == ['mesh-1']
    if ansible_inventory_flushes_cache():
        inv, dummy = run(config, args=['--flush-cache'])
    else:
        play = write(tmp_path, 'hosts.yml', [{'hosts': 'all', 'gather_facts': False, 'tasks': []}])
        dummy, out = run(config, playbook=play, args=['--flush-cache', '--list-hosts'])
        assert 'mesh-2' in out
        inv, dummy = run(config)
    assert sorted(hostvars(inv)) == ['mesh-1', 'mesh-2']


def test_strict_compose_error_names_the_expression(run, tmp_path):
    path = write(tmp_path, 'kc.yaml', kubeconfig('mesh-1'))
    config = {'plugin': 'meshops.cilium.kubeconfig', 'kubeconfig': [path], 'compose': {'x': 'no_such_var + 1'}}
    inv, dummy = run(config)
    assert 'x' not in hostvars(inv)['mesh-1']
    dummy, err = run(dict(config, strict=True), expect_ok=False)
    assert 'no_such_var' in err


@pytest.mark.parametrize('content, message', [
    (None, 'kubeconfig file {path} does not exist'),
    ('clusters: [unclosed', 'kubeconfig file {path} is not valid YAML'),
    ('- a list', 'kubeconfig file {path} is not a kubeconfig (top level is not a mapping)'),
    (kubeconfig(('mesh-1', 'gone', 'mesh-1')),
     'kubeconfig {path}: context "mesh-1" names cluster "gone", which this file does not define'),
    (kubeconfig(('mesh-1', 'mesh-1', 'nobody')),
     'kubeconfig {path}: context "mesh-1" names user "nobody", which this file does not define'),
    (kubeconfig(extra={'contexts': [{'context': {'cluster': 'x'}}]}),
     'kubeconfig {path}: entry 1 of "contexts" has no name'),
    (kubeconfig(extra={'contexts': [{'name': 'mesh-1', 'context': {}}]}),
     'kubeconfig {path}: context "mesh-1" names no cluster'),
    (kubeconfig(extra={'contexts': 'mesh-1'}), 'kubeconfig {path}: "contexts" is not a list'),
])
def test_bad_input_is_one_clear_error_naming_file_and_context(run, tmp_path, content, message):
    path = str(tmp_path / 'kc.yaml')
    if content is not None:
        write(tmp_path, 'kc.yaml', content)
    dummy, err = run({'plugin': 'meshops.cilium.kubeconfig', 'kubeconfig': [path]}, expect_ok=False)
    assert says(err, message.format(path=path))
    assert 'Traceback' not in err


def test_an_unset_environment_variable_in_a_path_is_named(run):
    dummy, err = run({'plugin': 'meshops.cilium.kubeconfig', 'kubeconfig': ['${MESHOPS_UNSET_DIR}/kc.yaml']},
                     expect_ok=False)
    assert says(err, 'uses the environment variable MESHOPS_UNSET_DIR, which is not set')


def test_a_default_for_an_unset_variable_is_relative_to_the_configuration(run, tmp_path):
    (tmp_path / 'fleet').mkdir()
    (tmp_path / 'elsewhere').mkdir()
    default = write(tmp_path, 'fleet/kc.yaml', kubeconfig('mesh-1'))
    chosen = write(tmp_path, 'elsewhere/kc.yaml', kubeconfig('mesh-9'))
    config = {'plugin': 'meshops.cilium.kubeconfig', 'kubeconfig': ['${MESHOPS_TEST_FLEET:-fleet}/kc.yaml']}
    inv, dummy = run(config)
    assert hostvars(inv) == {'mesh-1': {'meshops_kubeconfig': default, 'meshops_context': 'mesh-1'}}
    inv, dummy = run(config, env={'MESHOPS_TEST_FLEET': str(tmp_path / 'elsewhere')})
    assert hostvars(inv) == {'mesh-9': {'meshops_kubeconfig': chosen, 'meshops_context': 'mesh-9'}}


def test_the_local_fleet_through_the_plugin_is_the_local_inventory(run, tmp_path):
    """inventories/local-kubeconfig finds the fleet's kubeconfig where inventories/local does (MESHOPS_FLEET_DIR)
    and gives the same hosts, group and cluster IDs, with the same group_vars (a link, not a copy)."""
    (tmp_path / 'fleet').mkdir()
    fleet_kubeconfig = write(tmp_path, 'fleet/kubeconfig', kubeconfig('mesh-1', 'mesh-2', 'mesh-3', 'kind-x'))
    env = {'MESHOPS_FLEET_DIR': str(tmp_path / 'fleet')}
    plugin, dummy = run(None, env=env, source=os.path.join(REPO, 'inventories', 'local-kubeconfig'))
    local, dummy = run(None, env=env, source=os.path.join(REPO, 'inventories', 'local'))
    assert sorted(plugin['mesh']['hosts']) == sorted(local['mesh']['hosts']) == ['mesh-1', 'mesh-2', 'mesh-3']
    ids = {h: v['cilium_cluster_id'] for h, v in hostvars(plugin).items()}
    assert ids == {h: v['cilium_cluster_id'] for h, v in hostvars(local).items()} == {'mesh-1': 1, 'mesh-2': 2,
                                                                                      'mesh-3': 3}
    for host, hv in hostvars(plugin).items():
        assert hv['meshops_kubeconfig'] == fleet_kubeconfig and hv['meshops_context'] == host
        extra = {'meshops_kubeconfig', 'meshops_context'}
        assert {k: v for k, v in hv.items() if k not in extra} == \
            {k: v for k, v in hostvars(local)[host].items() if k not in extra}
    assert os.path.islink(os.path.join(REPO, 'inventories', 'local-kubeconfig', 'group_vars', 'all.yml'))


def test_only_configuration_files_named_kubeconfig_yml_are_taken(run, tmp_path):
    path = write(tmp_path, 'kc.yaml', kubeconfig('mesh-1'))
    dummy, err = run({'plugin': 'meshops.cilium.kubeconfig', 'kubeconfig': [path]}, name='mesh.yml',
                     expect_ok=False)
    assert 'meshops.cilium.kubeconfig' in err


# -- read_cilium ---------------------------------------------------------------

def cilium_routes(apiserver, config_map=None, release_record=None):
    ns = '/api/v1/namespaces/kube-system'
    if config_map is not None:
        apiserver.routes[ns + '/configmaps/cilium-config'] = (200, {
            'kind': 'ConfigMap', 'apiVersion': 'v1', 'metadata': {'name': 'cilium-config'}, 'data': config_map})
    items = []
    if release_record is not None:
        items.append({'metadata': {'name': 'sh.helm.release.v1.cilium.v%d' % release_record['version'],
                                   'labels': {'owner': 'helm', 'name': 'cilium',
                                              'version': str(release_record['version'])}},
                      'type': 'helm.sh/release.v1', 'data': {'release': helm_secret_data(release_record)}})
    apiserver.routes[ns + '/secrets'] = (200, {'kind': 'SecretList', 'apiVersion': 'v1', 'metadata': {},
                                               'items': items})


def test_read_cilium_reads_identity_and_warns_about_an_unreachable_cluster(run, tmp_path, apiserver, closed_port):
    cilium_routes(apiserver, {'cluster-name': 'eu', 'cluster-id': '7'},
                  release(3, chart='1.19.5', config={'cluster': {'name': 'ignored', 'id': 9}}))
    cfg = apiserver.kubeconfig('mesh-1', token=TOKEN)
    down = kubeconfig('mesh-2', server='https://127.0.0.1:%d' % closed_port)
    for key in ('clusters', 'users', 'contexts'):
        cfg[key] += down[key]
    path = write(tmp_path, 'kc.yaml', cfg)
    config = {'plugin': 'meshops.cilium.kubeconfig', 'kubeconfig': [path], 'read_cilium': True,
              'connect_timeout': 2, 'request_timeout': 5,
              'compose': {'cilium_cluster_id': 'meshops_cilium.cluster_id'},
              'keyed_groups': [{'key': 'meshops_cilium.chart_version', 'prefix': 'chart'}]}
    inv, err = run(config)
    assert hostvars(inv)['mesh-1']['meshops_cilium'] == {
        'installed': True, 'cluster_name': 'eu', 'cluster_id': 7, 'chart_version': '1.19.5',
        'release_status': 'deployed'}
    assert hostvars(inv)['mesh-1']['cilium_cluster_id'] == 7
    assert inv['chart_1_19_5']['hosts'] == ['mesh-1']
    assert 'meshops_cilium' not in hostvars(inv)['mesh-2']
    assert says(err, 'read_cilium: mesh-2: ') and says(err, 'the host stays without meshops_cilium')
    # two reads, no writes
    assert sorted(p.split('?')[0] for p, dummy in apiserver.requests) == [
        '/api/v1/namespaces/kube-system/configmaps/cilium-config', '/api/v1/namespaces/kube-system/secrets']
    assert apiserver.writes == []
    # strict: the unreachable cluster stops the inventory, named
    dummy, err = run(dict(config, strict=True), expect_ok=False)
    assert says(err, 'read_cilium: mesh-2: ')


class FakeCluster(object):
    name = 'mesh-1'

    def __init__(self, config_map, secrets):
        self.config_map, self.secrets = config_map, secrets

    def read_config_map(self, namespace, name, missing_ok=False):
        return self.config_map

    def list_secrets(self, namespace, label_selector=None, field_selector=None):
        return self.secrets


def secret(record):
    return {'metadata': {'name': 'sh.helm.release.v1.cilium.v%d' % record['version'],
                         'labels': {'owner': 'helm', 'name': 'cilium', 'version': str(record['version'])}},
            'type': 'helm.sh/release.v1', 'data': {'release': helm_secret_data(record)}}


def test_read_identity_falls_back_to_the_release_values_and_knows_no_cilium():
    rec = release(2, status='pending-upgrade', chart='1.20.2', config={'cluster': {'name': 'us', 'id': '4'}})
    assert read_identity(FakeCluster(None, [secret(rec)])) == {
        'installed': True, 'cluster_name': 'us', 'cluster_id': 4, 'chart_version': '1.20.2',
        'release_status': 'pending-upgrade'}
    assert read_identity(FakeCluster(None, [])) == {
        'installed': False, 'cluster_name': None, 'cluster_id': None, 'chart_version': None, 'release_status': None}
    assert read_identity(FakeCluster({'data': {'cluster-name': 'x', 'cluster-id': '3'}}, []))['cluster_id'] == 3
