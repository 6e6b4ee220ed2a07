//go:build tools

// The real node's binaries are built from this module's graph (`make kubelet kube-proxy`);
// these imports keep `go mod tidy` from dropping what they need.
package main

import (
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
