// Command kingress stands in for a networking layer (net-istio) on the local lane: it
// reconciles Knative Ingress objects of the Istio ingress class and reports them
// configured and load-balanced, with the addresses of Istio's standard gateways.
//
// This is the ONE part of Knative on the lane that is not upstream code. Why: Route
// readiness waits for its KIngress to report Ready, and no networking layer builds from
// Go modules (net-istio and the others are not served by the module proxy, and all need
// Envoy). The lane has no data plane anyway: no request ever reaches a pod. The Istio
// VirtualServices the operator writes are unaffected; they are the operator's own.
package main

import (
	"context"

	"k8s.io/client-go/tools/cache"
	"knative.dev/networking/pkg/apis/networking"
	"knative.dev/networking/pkg/apis/networking/v1alpha1"
	ingressinformer "knative.dev/networking/pkg/client/injection/informers/networking/v1alpha1/ingress"
	ingressreconciler "knative.dev/networking/pkg/client/injection/reconciler/networking/v1alpha1/ingress"
	netcfg "knative.dev/networking/pkg/config"
	"knative.dev/pkg/configmap"
	"knative.dev/pkg/controller"
	"knative.dev/pkg/injection/sharedmain"
	pkgreconciler "knative.dev/pkg/reconciler"
	"knative.dev/pkg/signals"
)

// Istio's standard gateway Services, as a real net-istio install reports them.
const (
	publicGateway  = "istio-ingressgateway.istio-system.svc.cluster.local"
	privateGateway = "knative-local-gateway.istio-system.svc.cluster.local"
)

type statusOnly struct{}

// ReconcileKind marks the Ingress ready; the generated reconciler writes the status and
// the observed generation, and only when they changed.
func (*statusOnly) ReconcileKind(_ context.Context, ing *v1alpha1.Ingress) pkgreconciler.Event {
	ing.Status.InitializeConditions()
	ing.Status.MarkNetworkConfigured()
	ing.Status.MarkLoadBalancerReady(
		[]v1alpha1.LoadBalancerIngressStatus{{DomainInternal: publicGateway}},
		[]v1alpha1.LoadBalancerIngressStatus{{DomainInternal: privateGateway}},
	)
	return nil
}

func newController(ctx context.Context, _ configmap.Watcher) *controller.Impl {
	impl := ingressreconciler.NewImpl(ctx, &statusOnly{}, netcfg.IstioIngressClassName)
	ingressinformer.Get(ctx).Informer().AddEventHandler(cache.FilteringResourceEventHandler{
		FilterFunc: pkgreconciler.AnnotationFilterFunc(
			networking.IngressClassAnnotationKey, netcfg.IstioIngressClassName, false),
		Handler: controller.HandleAll(impl.Enqueue),
	})
	return impl
}

func main() {
	ctx := sharedmain.WithHealthProbesDisabled(signals.NewContext())
	sharedmain.MainWithContext(ctx, "kingress-istio", newController)
}
