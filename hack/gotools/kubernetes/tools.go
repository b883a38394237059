//go:build tools

// Package tools pins the Kubernetes commands the local fleet builds.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	// agnhost serves the fleet's real test workloads (netexec for the traffic check)
	_ "k8s.io/kubernetes/test/images/agnhost"
)
