//go:build tools

// Package tools pins KWOK's main package: it fakes a Node and the lifecycle of the pods
// scheduled to it (no kubelet, no containers), driven by the stages the lane passes it.
package tools

import _ "sigs.k8s.io/kwok/cmd/kwok"
