# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0
"""The mesh-wide check of global Services and cross-cluster policies (role services), on the controller."""

# No import from ansible.errors here: importing it into a unit-test process changes how module warnings are
# collected for every later test; Ansible reports any exception of a filter with its message.
from ansible_collections.meshops.cilium.plugins.module_utils.errors import MeshopsValueError
from ansible_collections.meshops.cilium.plugins.module_utils.services import mesh_check


def mesh_services_check(services, policies, members):
    if not isinstance(members, (list, tuple)) or not all(isinstance(m, str) for m in members):
        raise MeshopsValueError('mesh_services_check: members must be a list of cluster names, got %r' % (members,))
    return mesh_check(services, policies, list(members))


class FilterModule(object):
    def filters(self):
        return {'mesh_services_check': mesh_services_check}
