// Command controller runs Knative Serving's own reconcilers (Service, Configuration,
// Revision, Route, ServerlessService, labeler, GC, namespace certificates, DomainMapping)
// exactly as upstream's cmd/controller wires them, with ONE deviation: the health-probe
// server is disabled.
//
// Why: upstream's controller main serves readiness/liveness probes on a fixed :8080,
// and the autoscaler's stats server also binds :8080. In a pod each has its own network
// namespace; on the local lane every Knative process shares one, so the second to start
// would exit. Nothing on the lane reads those probes (there is no kubelet).
//
// Also left out: the cert-manager Certificate reconciler, which upstream adds only when
// config-network asks for external-domain TLS or similar. The lane never sets that, and
// this main refuses to start if someone does, instead of silently ignoring it.
package main

import (
	"log"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	netcfg "knative.dev/networking/pkg/config"
	"knative.dev/pkg/injection"
	"knative.dev/pkg/injection/sharedmain"
	"knative.dev/pkg/signals"
	"knative.dev/pkg/system"
	"knative.dev/serving/pkg/networking"
	"knative.dev/serving/pkg/reconciler/configuration"
	"knative.dev/serving/pkg/reconciler/domainmapping"
	"knative.dev/serving/pkg/reconciler/gc"
	"knative.dev/serving/pkg/reconciler/labeler"
	"knative.dev/serving/pkg/reconciler/nscert"
	"knative.dev/serving/pkg/reconciler/revision"
	"knative.dev/serving/pkg/reconciler/route"
	"knative.dev/serving/pkg/reconciler/serverlessservice"
	"knative.dev/serving/pkg/reconciler/service"
)

func main() {
	ctx := signals.NewContext()
	cfg := injection.ParseAndGetRESTConfigOrDie()

	network, err := kubernetes.NewForConfigOrDie(cfg).CoreV1().ConfigMaps(system.Namespace()).
		Get(ctx, netcfg.ConfigMapName, metav1.GetOptions{})
	if err != nil {
		log.Fatalf("reading ConfigMap %s: %v", netcfg.ConfigMapName, err)
	}
	parsed, err := netcfg.NewConfigFromMap(network.Data)
	if err != nil {
		log.Fatalf("parsing ConfigMap %s: %v", netcfg.ConfigMapName, err)
	}
	if networking.IsNetCertManagerControllerRequired(parsed) {
		log.Fatalf("ConfigMap %s asks for cert-manager certificates; the local lane runs no cert-manager",
			netcfg.ConfigMapName)
	}

	sharedmain.MainWithConfig(sharedmain.WithHealthProbesDisabled(ctx), "controller", cfg,
		configuration.NewController,
		labeler.NewController,
		revision.NewController,
		route.NewController,
		serverlessservice.NewController,
		service.NewController,
		gc.NewController,
		nscert.NewController,
		domainmapping.NewController,
	)
}
