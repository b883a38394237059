"""A local fleet of real Kubernetes control planes for meshops.cilium's tests.

Each cluster is a real kube-apiserver (RBAC, token and client-certificate auth, an audit
log), kube-controller-manager, kube-scheduler and kwok, all built from pinned Go modules and
started on loopback. One etcd serves every cluster under its own key prefix.
"""
