# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0
"""The preflight's check of the values Helm will get (issue 11, "preflight on the rendered truth").

``value_problems`` runs, on one cluster's ``cilium_values`` merged with the values the inventory
options set, the checks ``cilium_install`` would only run later (reserved and removed keys,
contradictions with module options) and the target chart's own ``values.schema.json``. Pure,
except ``load_chart_schema`` which reads the schema out of a local chart archive.
"""

import json
import os
import re
import tarfile
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.meshops.cilium.plugins.module_utils.values import (
    check_user_values,
    chosen_paths,
    desired_install_values,
    get_path,
    merge_user_values,
    normalize_kpr,
    review_existing,
    set_path,
    install_values,
    rendered_already,
    validate_install_params,
)


def load_chart_schema(chart_ref):
    """``values.schema.json`` of a local chart archive (``.tgz``) or directory, else None (a chart
    from a repository is checked by ``helm`` itself at install time)."""
    if not chart_ref:
        return None
    path = os.path.expanduser(str(chart_ref))
    try:
        if os.path.isdir(path):
            with open(os.path.join(path, 'values.schema.json')) as f:
                return json.load(f)
        if os.path.isfile(path) and tarfile.is_tarfile(path):
            with tarfile.open(path) as tar:
                for member in tar.getmembers():
                    parts = member.name.split('/')
                    if len(parts) == 2 and parts[1] == 'values.schema.json':
                        return json.load(tar.extractfile(member))
    except (OSError, ValueError, tarfile.TarError):
        return None
    return None


def managed_values(entry):
    """The chart values ``cilium_install`` sets from its options whatever ``values`` say, for preflight
    ``entry``: from ``entry['install']`` (cilium_install's options exactly as the cilium role passes
    them) when the entry has them, else from the entry's identity and routing fields."""
    install = entry.get('install')
    if isinstance(install, dict):
        try:
            return desired_install_values(install)
        except (TypeError, ValueError):
            pass  # a bad option: reported by option_problems; the identity fields still apply
    out = {}
    if entry.get('cluster_name'):
        set_path(out, 'cluster.name', str(entry['cluster_name']))
    try:
        if entry.get('cluster_id') is not None:
            set_path(out, 'cluster.id', int(entry['cluster_id']))
        if entry.get('max_connected_clusters') is not None:
            set_path(out, 'clustermesh.maxConnectedClusters', int(entry['max_connected_clusters']))
    except (TypeError, ValueError):
        pass  # reported by the identity checks
    if entry.get('routing_mode'):
        set_path(out, 'routingMode', entry['routing_mode'])
    if entry.get('kube_proxy_replacement') is not None:
        try:
            set_path(out, 'kubeProxyReplacement', normalize_kpr(entry['kube_proxy_replacement']))
        except ValueError:
            pass  # reported by the kubeProxyReplacement check
    return out


# cilium_install's option -> the role variable that sets it (cilium_<option> unless named here)
ROLE_VARIABLES = {'cluster_pool_ipv4_pod_cidrs': 'cilium_pod_cidrs'}


def role_variable(option):
    """The cilium role variable behind a cilium_install option (``clustermesh_apiserver.node_port`` ->
    ``cilium_clustermesh_node_port``)."""
    if option.startswith('clustermesh_apiserver.'):
        return 'cilium_clustermesh_' + option.split('.', 1)[1]
    return ROLE_VARIABLES.get(option, 'cilium_' + option)


def option_problems(params):
    """What ``cilium_install`` refuses in its own options ``params`` before it reads the cluster (a
    bad routing mode, tunnel protocol, encryption type, port, duration, CIDR...), as
    ``[(field, problem, fix)]`` naming the role variable to correct."""
    try:
        validate_install_params(params)
    except (TypeError, ValueError) as e:
        text = str(e)
        found = re.match(r'[a-z0-9_]+(\.[a-z_]+)?', text)
        option = getattr(e, 'option', None) or (found.group(0) if found else None)
        var = role_variable(option) if option else 'cilium_install'
        return [(var, 'cilium_install would refuse it: %s' % text,
                 'correct %s in the inventory (or remove it to use the role default)' % var)]
    return []


def _path(err):
    return '.'.join(str(x) for x in err.absolute_path) or '(top level)'


def value_problems(values, managed=None, schema=None):
    """Every problem with ``values`` (a cluster's ``cilium_values``) as ``[(path, problem, fix)]``.

    ``managed``: what the inventory options set (``managed_values``); ``schema``: the target chart's
    ``values.schema.json`` (None: not checked)."""
    if values is None:
        values = {}
    if not isinstance(values, dict):
        return [('cilium_values', 'is a %s, not a mapping of Helm values' % type(values).__name__,
                 'set cilium_values to a mapping, e.g. {operator: {replicas: 1}}')]
    problems = []
    try:
        check_user_values(values)
    except ValueError as e:
        problems.append(('cilium_values', str(e), 'remove or correct that key in cilium_values'))
    merged = values
    try:
        merged = merge_user_values(values, managed or {})
    except ValueError as e:
        problems.append(('cilium_values', str(e),
                         'set it through the role variable (cilium_*) instead of cilium_values, or remove it'))
    if schema:
        try:
            # imported here: about 0.2 s of CPU, paid only when values are checked against a schema
            from jsonschema import Draft7Validator
        except ImportError:
            return problems + [('cilium_values', 'the Python library jsonschema is missing: the values were not '
                                'checked against the chart schema', 'pip install -r requirements.txt')]
        for err in sorted(Draft7Validator(schema).iter_errors(merged), key=lambda e: [str(x) for x in e.absolute_path]):
            problems.append(('cilium_values.%s' % _path(err), 'the target chart\'s values.schema.json refuses it: %s'
                             % err.message, 'give %s a value of the type the chart expects' % _path(err)))
    return problems


def existing_value_problems(params, datapath_values):
    """The values of an installed release that shape its datapath and that an install with ``params``
    (``cilium_install``'s options, with ``values``, ``default_options`` and ``existing_values``) would drop
    or change without the user choosing it, as ``[(path, problem, fix)]``: the same review
    ``cilium_install`` makes (``values.settle_existing``), done before the first write of the run.
    ``datapath_values``: the release's datapath values, as ``clustermesh_info`` returns them."""
    if not datapath_values or (params.get('existing_values') or 'refuse') != 'refuse':
        return []
    try:
        desired = merge_user_values(params.get('values') or {}, desired_install_values(params))
        review = review_existing(datapath_values, desired, chosen_paths(params))
    except (TypeError, ValueError):
        return []  # bad options or values: reported by the other checks
    out = []
    for r in review:
        if not r['datapath'] or r['chosen']:
            continue
        before = get_path(datapath_values, r['keys'])
        if r['change'] == 'dropped':
            what = 'this run would drop it'
        else:
            what = 'this run would change it to %s' % json.dumps(get_path(desired, r['keys'])) \
                if get_path(desired, r['keys']) is not None else 'this run would change it'
        out.append(('cilium_values.%s' % r['path'],
                    'the installed release has %s=%s, which the inventory does not set, and %s; it shapes %s'
                    % (r['path'], json.dumps(before), what, r['datapath']),
                    'set cilium_values.%s (or its cilium_* variable) to the value it must have, or '
                    'cilium_existing_values: keep (keep the release\'s values) or reset (drop them)' % r['path']))
    return out


def render_problems(entries, render, workers=4):
    """Render the target chart with each cluster's install values, the chart's own render-time
    checks (``fail`` in its templates: for example ipam.mode=eni without eni.enabled, an invalid
    cluster name). ``entries``: ``[(host, install params, chart_ref, release, chart_version)]``, only
    local charts; ``release``: the cluster's deployed release as described (a release deployed from
    that chart version with the same values is not rendered again). ``render(values, chart_ref)``
    returns None or helm's error. Returns ``[(host, path, problem, fix)]``."""
    jobs = []
    for host, params, chart_ref, release, chart_version in entries:
        try:
            values = install_values(params)
        except (TypeError, ValueError):
            continue  # reported by value_problems
        if not rendered_already(release, chart_version, values):
            jobs.append((host, values, chart_ref))
    if not jobs:
        return []
    with ThreadPoolExecutor(max(1, min(workers, len(jobs)))) as pool:
        errors = list(pool.map(lambda job: render(job[1], job[2]), jobs))
    out = []
    for (host, _values, chart_ref), err in zip(jobs, errors):
        if err:
            out.append((host, 'cilium_values', 'the target chart %s refuses the values this run would install: %s'
                        % (os.path.basename(str(chart_ref)), err),
                        'correct the value the chart names (in cilium_values or its cilium_* variable); '
                        '`helm template` of that chart with these values shows the same'))
    return out
