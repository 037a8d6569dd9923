//go:build tools

// Package tools pins Traefik, the Knative lane's ingress: its Knative provider implements
// Knative's KIngress (class traefik.ingress.networking.knative.dev) in Go, so requests reach
// revisions through a real router that honours Knative's traffic splits. Built unchanged
// from its module; go.mod repeats the replace and exclude directives of Traefik's own
// go.mod, which Go applies only in the main module.
package tools

import (
	_ "github.com/traefik/traefik/v3/cmd/traefik"
)
