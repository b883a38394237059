# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0
"""Documentation of the roles: every role has a README.md that names the required options of each of its
entry points (meta/argument_specs.yml), and docs/README.md links every guide (docs/*.md) and every role
README, with links that resolve to existing files."""

import os
import re

import pytest
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROLES = os.path.join(REPO, 'roles')
DOCS = os.path.join(REPO, 'docs')
INDEX = os.path.join(DOCS, 'README.md')
# [text](target) and [text](target "title"); images (![alt](...)) are links too
LINK = re.compile(r'\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)')


def roles():
    return sorted(name for name in os.listdir(ROLES) if os.path.isdir(os.path.join(ROLES, name)))


def read(path):
    with open(path) as f:
        return f.read()


def required_options(role):
    """{entry point: [required option names]} of a role's meta/argument_specs.yml (none without one)."""
    path = os.path.join(ROLES, role, 'meta', 'argument_specs.yml')
    if not os.path.isfile(path):
        return {}
    with open(path) as f:
        specs = (yaml.safe_load(f) or {}).get('argument_specs') or {}
    return dict((entry, sorted(name for name, option in ((spec or {}).get('options') or {}).items()
                               if (option or {}).get('required')))
                for entry, spec in specs.items())


def local_links(path):
    """The targets of a markdown file's links to files of the repository, as absolute paths (no anchors)."""
    targets = set()
    for target in LINK.findall(read(path)):
        if re.match(r'^[a-z][a-z0-9+.-]*:', target, re.I) or target.startswith('#'):
            continue  # a URL (https:, mailto:) or an anchor in the same file
        target = target.split('#', 1)[0]
        targets.add(os.path.normpath(os.path.join(os.path.dirname(path), target)))
    return targets


def test_there_are_roles():
    assert len(roles()) > 0


@pytest.mark.parametrize('role', roles())
def test_role_has_a_readme(role):
    assert os.path.isfile(os.path.join(ROLES, role, 'README.md')), \
        'roles/%s has no README.md' % role


@pytest.mark.parametrize('role', roles())
def test_role_readme_names_every_required_option(role):
    readme = os.path.join(ROLES, role, 'README.md')
    if not os.path.isfile(readme):
        pytest.fail('roles/%s has no README.md' % role)
    text = read(readme)
    missing = ['%s (entry point %s)' % (name, entry)
               for entry, names in sorted(required_options(role).items()) for name in names
               if not re.search(r'(?<![A-Za-z0-9_])%s(?![A-Za-z0-9_])' % re.escape(name), text)]
    assert not missing, 'roles/%s/README.md does not mention the required option(s): %s' % (
        role, ', '.join(missing))


def test_docs_index_exists():
    assert os.path.isfile(INDEX), 'docs/README.md is missing'


def test_docs_index_links_resolve():
    if not os.path.isfile(INDEX):
        pytest.fail('docs/README.md is missing')
    broken = sorted(os.path.relpath(target, REPO) for target in local_links(INDEX) if not os.path.exists(target))
    assert not broken, 'docs/README.md links to missing files: %s' % ', '.join(broken)


def test_docs_index_links_every_guide_and_role_readme():
    if not os.path.isfile(INDEX):
        pytest.fail('docs/README.md is missing')
    linked = local_links(INDEX)
    wanted = [os.path.join(DOCS, name) for name in sorted(os.listdir(DOCS))
              if name.endswith('.md') and name != 'README.md' and os.path.isfile(os.path.join(DOCS, name))]
    wanted += [os.path.join(ROLES, role, 'README.md') for role in roles()
               if os.path.isfile(os.path.join(ROLES, role, 'README.md'))]
    missing = [os.path.relpath(path, REPO) for path in wanted if os.path.normpath(path) not in linked]
    assert not missing, 'docs/README.md does not link: %s' % ', '.join(missing)


def test_required_options_are_read():
    """The check above is not vacuous: the cilium role's one required option is found."""
    assert 'cilium_cluster_id' in required_options('cilium').get('main', [])
