// Pins the Gateway API release whose CRDs the tests install (read from the module cache by
// kfserving_operator/cluster/gateway_api.py). Nothing here is built.
module example.invalid/gatewayapi

go 1.26.0

require sigs.k8s.io/gateway-api v1.2.1
