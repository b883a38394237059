// Package controllers declares the two names Cilium 1.20.2 takes from
// sigs.k8s.io/mcs-api/controllers (see go.mod for why this stand-in exists).
package controllers

// DerivedServiceAnnotation is the annotation on a ServiceImport naming the Service
// derived from it (the MCS API's well-known key).
const DerivedServiceAnnotation = "multicluster.kubernetes.io/derived-service"

// ServiceImportReconciler is only named by Cilium (in an error message); the programs
// the fleet builds never run the upstream reconciler.
type ServiceImportReconciler struct{}
