//go:build tools

// Package tools pins the upstream Knative Serving main packages this wrapper module
// builds unchanged (the webhook, the autoscaler, the activator and the queue-proxy). The
// controller is a main of our own, in ./controller.
package tools

import (
	_ "knative.dev/serving/cmd/activator"
	_ "knative.dev/serving/cmd/autoscaler"
	_ "knative.dev/serving/cmd/queue"
	_ "knative.dev/serving/cmd/webhook"
)
