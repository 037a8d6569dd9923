//go:build tools

// Package tools pins CoreDNS, the Knative lane's cluster DNS (its kubernetes plugin answers
// for Services and pods, so a transformer reaches its predictor by name). Built unchanged
// from its module, with the plugins its own main compiles in.
package tools

import (
	_ "github.com/coredns/coredns"
)
