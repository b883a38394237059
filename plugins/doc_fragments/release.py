# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0


class ModuleDocFragment:
    """The Cilium Helm release a module works on.

    The argument spec that matches this fragment lives in
    plugins/module_utils/base.py (RELEASE_ARGUMENT_SPEC); keep them in step.
    Modules that describe these options differently (cilium_ca, clustermesh_status)
    document them themselves.
    """

    DOCUMENTATION = r'''
options:
  release_name:
    description:
      - Name of the Cilium Helm release.
    type: str
    default: cilium
  namespace:
    description:
      - Namespace of Cilium and of its Helm release.
    type: str
    default: kube-system
'''
