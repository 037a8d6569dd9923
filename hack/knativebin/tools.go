//go:build tools

// Package tools pins the upstream Knative Serving main packages this wrapper module
// builds unchanged (the webhook and the autoscaler). The controller and the KIngress
// status reconciler are mains of our own, in ./controller and ./kingress.
package tools

import (
	_ "knative.dev/serving/cmd/autoscaler"
	_ "knative.dev/serving/cmd/webhook"
)
