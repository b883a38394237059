// A local stand-in for sigs.k8s.io/mcs-api/controllers: the Go module proxy refuses
// v0.5.2 (Cilium 1.20.2's pin) and serves no other version. Cilium's code that the
// clustermesh-apiserver and cilium-dbg link uses only the constant
// DerivedServiceAnnotation and names ServiceImportReconciler, so those two are all
// this module declares. Its value is the upstream one (an MCS API well-known key).
module sigs.k8s.io/mcs-api/controllers

go 1.24
