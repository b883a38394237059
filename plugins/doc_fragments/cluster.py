# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0


class ModuleDocFragment:
    """Connection options shared by every module that talks to a cluster.

    The argument spec that matches this fragment lives in
    plugins/module_utils/cluster.py (CLUSTER_ARGUMENT_SPEC); keep them in step.
    Every module that extends it is a member of the action group ``cluster``
    (meta/runtime.yml), so the fragment also carries the C(action_group) attribute.
    """

    DOCUMENTATION = r'''
options:
  kubeconfig:
    description:
      - Path to a kubeconfig file, or the kubeconfig itself as a dictionary (inline).
      - A path may list several files separated by C(:), as C(KUBECONFIG) does.
      - When neither O(kubeconfig) nor O(host) is given, C(~/.kube/config) is used.
      - Leaf values of an inline kubeconfig that hold credentials (C(token), C(password),
        C(client-key-data), C(client-certificate-data), every value of an exec plugin's C(env) and of an
        C(auth-provider)'s C(config), the password of a C(proxy-url)) are hidden from the module's output
        and its logged invocation.
      - Can also come from the E(K8S_AUTH_KUBECONFIG) environment variable; see the notes for when the environment applies.
    type: raw
  context:
    description:
      - The kubeconfig context to use. Defaults to the kubeconfig's C(current-context).
      - If the context does not exist the module fails and lists the contexts that do.
      - Can also come from the E(K8S_AUTH_CONTEXT) environment variable; see the notes for when the environment applies.
    type: str
  host:
    description:
      - URL of the Kubernetes API server, for example C(https://10.0.0.1:6443).
      - Given together with O(kubeconfig) or O(context), it overrides the context's server only when
        O(api_key) or O(client_cert)/O(client_key) are given too; otherwise, if it differs from the
        context's server, the module fails rather than send the context's credentials to another API server.
      - Can also come from the E(K8S_AUTH_HOST) environment variable; see the notes for when the environment applies.
    type: str
  api_key:
    description:
      - Bearer token used to authenticate to the API server.
      - Can also come from the E(K8S_AUTH_API_KEY) environment variable; see the notes for when the environment applies.
    type: str
  ca_cert:
    description:
      - Path to a CA bundle used to verify the API server's certificate.
      - Can also come from the E(K8S_AUTH_SSL_CA_CERT) environment variable; see the notes for when the environment applies.
    type: path
    aliases: [ssl_ca_cert]
  client_cert:
    description:
      - Path to a client certificate used to authenticate to the API server.
      - Can also come from the E(K8S_AUTH_CERT_FILE) environment variable; see the notes for when the environment applies.
    type: path
    aliases: [cert_file]
  client_key:
    description:
      - Path to the private key of O(client_cert).
      - Only the path is passed; it is still treated as sensitive and hidden from output.
      - Can also come from the E(K8S_AUTH_KEY_FILE) environment variable; see the notes for when the environment applies.
    type: path
    aliases: [key_file]
  validate_certs:
    description:
      - Whether to verify the API server's TLS certificate.
      - Can also come from the E(K8S_AUTH_VERIFY_SSL) environment variable; see the notes for when the environment applies.
      - When not set, the kubeconfig's C(insecure-skip-tls-verify) decides (verification on by default).
    type: bool
    aliases: [verify_ssl]
  proxy:
    description:
      - URL of an HTTP(S) proxy to reach the API server through, for example C(http://proxy:3128).
      - Can also come from the E(K8S_AUTH_PROXY) environment variable; see the notes for when the environment applies.
    type: str
  connect_timeout:
    description:
      - Seconds to wait for a TCP/TLS connection to the API server.
      - Kept small so that an unreachable cluster fails fast instead of stalling a fleet run.
    type: int
    default: 10
  request_timeout:
    description:
      - Seconds to wait for the API server to answer one request once connected.
    type: int
    default: 30
attributes:
  action_group:
    description: Use C(group/meshops.cilium.cluster) in C(module_defaults) to set defaults for this module.
    support: full
    membership:
      - meshops.cilium.cluster
requirements:
  - kubernetes >= 31 (Python library)
notes:
  - "Which cluster: the connection is resolved once, and the Kubernetes client and helm are both given
    that one result, so they always talk to the same API server. Precedence: options set in the task
    win; the E(K8S_AUTH_*) environment variables (as set by an AWX Kubernetes credential) are used
    only when the task sets none of O(kubeconfig), O(context) and O(host), and are otherwise
    ignored (listed in C(connection.ignored_environment) of the result); without either,
    C(~/.kube/config) and its current-context are used."
  - Contradicting options fail before anything is sent - O(client_cert) without O(client_key) (or the
    reverse), O(api_key) together with a client certificate, and O(host) different from the server of
    the given context without credentials of its own.
  - Every result (success or failure) carries C(api_server), the URL every request of the module went
    to, and C(connection) (C(api_server), C(context), C(auth), C(origin), C(ignored_environment)).
  - Helm is given the resolved connection as a private temporary kubeconfig (removed after each call)
    and runs without C(KUBECONFIG)/C(HELM_KUBE*) variables from the environment.
  - Every request is made at most once (no client-side retries), so an unreachable API server
    fails after O(connect_timeout) seconds with a message naming the cluster.
  - Set these options once per play with C(module_defaults) and the group
    C(group/meshops.cilium.cluster).
'''
