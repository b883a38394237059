# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0


class ModuleDocFragment:
    """Options of modules that run the helm binary on the controller.

    The argument spec that matches this fragment lives in
    plugins/module_utils/base.py (HELM_ARGUMENT_SPEC); keep them in step.
    O(chart_ref) and O(chart_version) mean different things per module, so each
    module documents those itself.
    """

    DOCUMENTATION = r'''
options:
  chart_repo_url:
    description:
      - Chart repository URL (C(--repo)), for example C(https://helm.cilium.io), with O(chart_ref=cilium).
      - A URL with credentials (C(https://user:password@host/...)) is refused before anything runs, since helm
        would get them on its command line. Add such a repository once with
        C(helm repo add NAME URL --username USER --password-stdin) (helm keeps the credentials in its
        repository config file) and set O(chart_ref=NAME/cilium) without O(chart_repo_url).
    type: str
  helm_binary:
    description:
      - Path to the helm binary (3.14 or newer; Helm 4 too). Default is C(helm) from E(PATH).
    type: path
requirements:
  - helm >= 3.14 (binary, on the controller); Helm 3 and Helm 4 are both tested
'''
