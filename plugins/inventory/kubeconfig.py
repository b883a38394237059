# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0
"""Inventory plugin meshops.cilium.kubeconfig: one host per kubeconfig context."""

DOCUMENTATION = r'''
name: kubeconfig
short_description: One inventory host per kubeconfig context, ready for the mesh roles
version_added: 0.1.0
description:
  - Reads one or more kubeconfig files and makes one inventory host per context (the host's name is the
    context's name), all of them in one group (O(group), V(mesh) by default), the group the playbooks of
    this collection run on.
  - Every host gets C(meshops_kubeconfig) (the file that defines its context) and C(meshops_context) (the
    context), the variables through which every role of the collection reaches the host's cluster.
  - A context defined in several files is taken from the first file that defines it, as C(kubectl) merges
    C(KUBECONFIG); a warning names both files.
  - Bad input stops the inventory with a message naming the file and the context. That is a missing or unreadable
    file, a file that is not YAML or not a kubeconfig, a context without a name or whose cluster or user the
    same file does not define (the roles get that one file, so it must hold all three).
  - With O(read_cilium) each cluster's installed Cilium identity is read (ConfigMap C(cilium-config) and the
    newest Helm release; two read requests, nothing is written) into C(meshops_cilium). A cluster that cannot
    be read gives a warning naming its context and stays in the inventory without C(meshops_cilium), unless
    O(strict) is set.
  - Cilium needs a unique cluster ID per cluster (C(cilium_cluster_id)); set it with O(compose), for example
    from a number in the context name or from C(meshops_cilium.cluster_id) of an installed cluster.
    C(cilium_cluster_id) and C(cilium_max_connected_clusters) set by O(compose) to a string of digits become
    integers (before ansible-core 2.19, O(compose) gives every value as a string).
  - The configuration file's name must end in C(kubeconfig.yml) or C(kubeconfig.yaml), for example
    C(meshops.kubeconfig.yml). The inventory plugin C(auto) (enabled by default) loads it; when
    C(enable_plugins) is set in C(ansible.cfg), list C(meshops.cilium.kubeconfig) (or C(auto)) there.
author:
  - meshops maintainers (@meshops)
extends_documentation_fragment:
  - constructed
  - inventory_cache
requirements:
  - kubernetes (Python library), only with O(read_cilium)
options:
  plugin:
    description: The name of this plugin; it marks the file as this plugin's configuration.
    type: str
    required: true
    choices: [meshops.cilium.kubeconfig]
  kubeconfig:
    description:
      - Kubeconfig files to read, in order (the first file that defines a context wins).
      - C(~) and environment variables (C($VAR), C(${VAR}), C(${VAR:-default}) with a default for an unset or
        empty variable) are expanded; a variable that is not set and has no default is an error.
        A relative path is taken relative to the directory of this configuration file.
      - When not set, the paths in the E(KUBECONFIG) environment variable (separated by C(:)), else
        C(~/.kube/config), as C(kubectl) does.
    type: list
    elements: str
  include:
    description:
      - Shell-style patterns (C(fnmatch), case-sensitive) of context names to make hosts of; a context must match one.
      - Empty (the default) includes every context.
    type: list
    elements: str
    default: []
  exclude:
    description: Shell-style patterns of context names to leave out; they win over O(include).
    type: list
    elements: str
    default: []
  group:
    description:
      - The group that holds every host (the mesh group the playbooks run on).
      - The playbooks and roles take the mesh group from C(meshops_mesh_group) (default V(mesh)); set it to
        the same name when you change this one.
    type: str
    default: mesh
  read_cilium:
    description:
      - Read each cluster's installed Cilium identity into the host variable C(meshops_cilium) (see the notes).
      - Needs the Python library C(kubernetes) and read access to ConfigMaps and Secrets in O(cilium_namespace).
    type: bool
    default: false
  cilium_namespace:
    description: Namespace of Cilium's Helm release and ConfigMap C(cilium-config), with O(read_cilium).
    type: str
    default: kube-system
  cilium_release_name:
    description: Name of Cilium's Helm release, with O(read_cilium).
    type: str
    default: cilium
  connect_timeout:
    description: Seconds to wait for a TCP connection to an API server, with O(read_cilium).
    type: int
    default: 5
  request_timeout:
    description: Seconds to wait for an API server's answer, with O(read_cilium).
    type: int
    default: 15
notes:
  - C(meshops_cilium) holds C(installed) (a C(cilium-config) ConfigMap or a Helm release exists),
    C(cluster_name) and C(cluster_id) (as the running Cilium has them in C(cilium-config), else from the
    release's values C(cluster.name) and C(cluster.id)), C(chart_version) and C(release_status) of the
    newest Helm release (V(null) when there is none).
  - Credentials stay in the kubeconfig files; the inventory holds only paths and context names.
  - Cilium's cluster name defaults to the inventory host name, here the context name. Where contexts have
    names Cilium refuses (an EKS ARN, upper case, over 32 characters), set C(cilium_cluster_name) with O(compose)
    (the preflight names every such cluster).
  - Variables from O(compose) and the host variables of this plugin win over C(group_vars) of the
    inventory directory (inventory host variables over group variables).
seealso:
  - name: The inventory of the local fleet with this plugin
    description: C(inventories/local-kubeconfig/meshops.kubeconfig.yml) in the collection's repository.
    link: https://github.com/meshops/cilium/tree/main/inventories/local-kubeconfig
'''

EXAMPLES = r'''
# inventories/prod/meshops.kubeconfig.yml: every context of ~/.kube/mesh.yaml named prod-*, cluster IDs
# from the number at the end of the context name (prod-eu-1 -> 1)
plugin: meshops.cilium.kubeconfig
kubeconfig:
  - ~/.kube/mesh.yaml
include:
  - prod-*
exclude:
  - prod-*-canary
compose:
  cilium_cluster_id: inventory_hostname | regex_search('[0-9]+$') | int

---
# Several files (the first that defines a context wins), an environment variable in a path, groups by
# installed chart version, IDs kept from the installed Cilium
plugin: meshops.cilium.kubeconfig
kubeconfig:
  - ${HOME}/.kube/eu.yaml
  - clusters/us.yaml          # relative to this file's directory
group: mesh
read_cilium: true
strict: true
compose:
  cilium_cluster_id: meshops_cilium.cluster_id
keyed_groups:
  - key: meshops_cilium.chart_version | default('none')
    prefix: chart
groups:
  not_installed: not (meshops_cilium.installed | default(false))

# ansible.cfg, when it sets enable_plugins at all
# [inventory]
# enable_plugins = meshops.cilium.kubeconfig, auto, yaml, ini, host_list
'''

import fnmatch
import os
import re
from concurrent.futures import ThreadPoolExecutor

from ansible.errors import AnsibleParserError
from ansible.module_utils.common.text.converters import to_native
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable
from ansible.utils.display import Display

from ansible_collections.meshops.cilium.plugins.module_utils.cluster import (
    DEFAULT_KUBECONFIG,
    load_kubeconfig_dicts,
)
from ansible_collections.meshops.cilium.plugins.module_utils.errors import MeshopsError

display = Display()

# $NAME, ${NAME} and ${NAME:-default} (the default used when NAME is unset or empty), as a shell expands them
_VAR_RE = re.compile(r'\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))')
_MAX_READERS = 8
# The collection's integer host variables: O(compose) gives them as strings before ansible-core 2.19 (no
# native types there), so a string of digits is made the integer on every ansible-core.
INTEGER_VARIABLES = ('cilium_cluster_id', 'cilium_max_connected_clusters')


def _named_entries(entries, kind, source):
    """``{name: body}`` of a kubeconfig list (``clusters``, ``users``, ``contexts``); a malformed entry is
    an error naming the file."""
    if entries is None:
        return {}
    if not isinstance(entries, list):
        raise AnsibleParserError('kubeconfig %s: "%s" is not a list' % (source, kind))
    out = {}
    for index, entry in enumerate(entries):
        name = entry.get('name') if isinstance(entry, dict) else None
        if not isinstance(name, str) or not name:
            raise AnsibleParserError('kubeconfig %s: entry %d of "%s" has no name' % (source, index + 1, kind))
        out.setdefault(name, entry.get(kind[:-1]) or {})
    return out


def file_contexts(source, config):
    """``[(context, cluster, user)]`` of one loaded kubeconfig file, every reference checked."""
    clusters = _named_entries(config.get('clusters'), 'clusters', source)
    users = _named_entries(config.get('users'), 'users', source)
    out = []
    for name, body in _named_entries(config.get('contexts'), 'contexts', source).items():
        if not isinstance(body, dict) or not body.get('cluster'):
            raise AnsibleParserError('kubeconfig %s: context "%s" names no cluster; add context.cluster '
                                     'or exclude the context' % (source, name))
        if body['cluster'] not in clusters:
            raise AnsibleParserError('kubeconfig %s: context "%s" names cluster "%s", which this file does not '
                                     'define; the roles get this one file, so define the cluster in it or exclude '
                                     'the context' % (source, name, body['cluster']))
        if body.get('user') and body['user'] not in users:
            raise AnsibleParserError('kubeconfig %s: context "%s" names user "%s", which this file does not '
                                     'define; define the user in it or exclude the context'
                                     % (source, name, body['user']))
        out.append((name, body['cluster'], body.get('user')))
    return out


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):

    NAME = 'meshops.cilium.kubeconfig'

    def verify_file(self, path):
        return super().verify_file(path) and path.endswith(('kubeconfig.yml', 'kubeconfig.yaml'))

    # -- options -----------------------------------------------------------------
    def kubeconfig_paths(self, config_dir, environ=None):
        """The kubeconfig files to read: option ``kubeconfig`` (expanded, relative to ``config_dir``), else
        ``KUBECONFIG``, else ``~/.kube/config``."""
        environ = os.environ if environ is None else environ
        given = self.get_option('kubeconfig')
        if given:
            paths = []
            for raw in given:
                path = os.path.expanduser(_VAR_RE.sub(lambda m: self._variable(m, raw, environ), str(raw)))
                paths.append(os.path.normpath(os.path.join(config_dir, path)))
        elif environ.get('KUBECONFIG'):
            paths = [os.path.abspath(os.path.expanduser(p)) for p in environ['KUBECONFIG'].split(os.pathsep) if p]
        else:
            paths = [os.path.expanduser(DEFAULT_KUBECONFIG)]
        out = []
        for p in paths:
            if p not in out:
                out.append(p)
        return out

    @staticmethod
    def _variable(match, raw, environ):
        name = match.group('braced') or match.group('plain')
        if environ.get(name):
            return environ[name]
        if match.group('default') is not None:
            return match.group('default')
        if name in environ:
            return ''
        raise AnsibleParserError('kubeconfig path "%s" uses the environment variable %s, which is not set; set it, '
                                 'give the path, or a default as ${%s:-default}' % (raw, name, name))

    def selected(self, context):
        include = self.get_option('include') or []
        exclude = self.get_option('exclude') or []
        if include and not any(fnmatch.fnmatchcase(context, p) for p in include):
            return False
        return not any(fnmatch.fnmatchcase(context, p) for p in exclude)

    # -- discovery ---------------------------------------------------------------
    def discover(self, paths):
        """``{host: {meshops_kubeconfig, meshops_context}}`` in file order; nothing of the kubeconfig's
        credentials."""
        hosts = {}
        for path in paths:
            try:
                loaded = load_kubeconfig_dicts(path)
            except MeshopsError as e:
                raise AnsibleParserError(to_native(e))
            for source, config in loaded:
                for context, dummy, dummy2 in file_contexts(source, config):
                    if not self.selected(context):
                        continue
                    if context in hosts:
                        display.warning('kubeconfig %s: context "%s" is also defined in %s, which comes first '
                                        'and is used' % (source, context, hosts[context]['meshops_kubeconfig']))
                        continue
                    hosts[context] = {'meshops_kubeconfig': source, 'meshops_context': context}
        return hosts

    def cluster_client(self, kubeconfig, context):
        """The seam to the Kubernetes client (unit tests replace it)."""
        # imported here: the kubernetes library is needed only with read_cilium
        from ansible_collections.meshops.cilium.plugins.module_utils.cluster import Cluster
        return Cluster({'kubeconfig': kubeconfig, 'context': context,
                        'connect_timeout': self.get_option('connect_timeout'),
                        'request_timeout': self.get_option('request_timeout')},
                       user_agent='meshops.cilium/inventory')

    def read_one(self, host):
        from ansible_collections.meshops.cilium.plugins.module_utils.helm import read_identity
        cluster = None
        try:
            cluster = self.cluster_client(host['meshops_kubeconfig'], host['meshops_context'])
            return read_identity(cluster, self.get_option('cilium_namespace'),
                                 self.get_option('cilium_release_name')), None
        except MeshopsError as e:
            return None, to_native(e)
        except Exception as e:  # anything the client raises: one line, never a traceback
            return None, 'cannot read Cilium: %s' % to_native(e)
        finally:
            if cluster is not None:
                cluster.close()

    def read_cilium(self, hosts):
        """Add ``meshops_cilium`` to every host whose cluster could be read; ``[(context, error)]`` of the others."""
        names = list(hosts)
        if not names:
            return []
        with ThreadPoolExecutor(max_workers=min(_MAX_READERS, len(names))) as pool:
            results = list(pool.map(lambda n: self.read_one(hosts[n]), names))
        failed = []
        for name, (identity, error) in zip(names, results):
            if error is None:
                hosts[name]['meshops_cilium'] = identity
            else:
                failed.append((name, error if error.startswith(name) else '%s: %s' % (name, error)))
        return failed

    # -- populate ----------------------------------------------------------------
    def populate(self, hosts):
        strict = self.get_option('strict')
        group = self.inventory.add_group(self.get_option('group'))
        for name, variables in hosts.items():
            self.inventory.add_host(name, group=group)
            for key, value in variables.items():
                self.inventory.set_variable(name, key, value)
            host_vars = self.inventory.get_host(name).get_vars()
            self._set_composite_vars(self.get_option('compose'), host_vars, name, strict=strict)
            host_vars = self.inventory.get_host(name).get_vars()
            for key in INTEGER_VARIABLES:
                value = host_vars.get(key)
                if isinstance(value, str) and value.strip().isdigit():
                    self.inventory.set_variable(name, key, int(value))
            host_vars = self.inventory.get_host(name).get_vars()
            self._add_host_to_composed_groups(self.get_option('groups'), host_vars, name, strict=strict)
            self._add_host_to_keyed_groups(self.get_option('keyed_groups'), host_vars, name, strict=strict)

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path, cache)
        self._read_config_data(path)
        cache_key = self.get_cache_key(path)
        use_cache = self.get_option('cache')
        hosts = None
        if use_cache and cache:
            hosts = self._cache.get(cache_key)
        if hosts is None:
            paths = self.kubeconfig_paths(os.path.dirname(os.path.abspath(path)))
            hosts = self.discover(paths)
            failed = []
            if self.get_option('read_cilium'):
                failed = self.read_cilium(hosts)
                for context, error in failed:
                    if self.get_option('strict'):
                        raise AnsibleParserError('read_cilium: %s' % error)
                    display.warning('read_cilium: %s; the host stays without meshops_cilium' % error)
            if use_cache and not failed:
                self._cache[cache_key] = hosts
        self.populate(hosts)
