# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0
"""How the roles reach an inventory host's cluster: the one rule, used by every role."""


def member_connection(name, hostvars, kubeconfig=None):
    """Module options ``kubeconfig`` and ``context`` that reach the cluster of inventory host ``name``.

    Its own ``meshops_kubeconfig`` (else ``kubeconfig``, the one of the running host's role) and
    its own ``meshops_context`` (else its inventory name). A member the inventory does not hold
    (``meshops_mesh_members`` in a job slice) is reached with ``kubeconfig`` and its name.
    """
    own = hostvars[name] if name in hostvars else {}
    return {
        'kubeconfig': own['meshops_kubeconfig'] if 'meshops_kubeconfig' in own else kubeconfig,
        'context': own['meshops_context'] if 'meshops_context' in own else name,
    }


class FilterModule(object):
    def filters(self):
        return {'member_connection': member_connection}
