{{/* Labels on every object of the chart. */}}
{{- define "kfserving-operator.labels" -}}
app.kubernetes.io/name: kfserving-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* The operator pod's labels; the Deployment and the webhook Service select on these. */}}
{{- define "kfserving-operator.selectorLabels" -}}
control-plane: kfserving-controller-manager
app.kubernetes.io/name: kfserving-operator
{{- end -}}

{{- define "kfserving-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{/* DNS names of the webhook Service, for the serving certificate. */}}
{{- define "kfserving-operator.serviceDNSNames" -}}
- kfserving-webhook-server-service
- kfserving-webhook-server-service.{{ .Release.Namespace }}
- kfserving-webhook-server-service.{{ .Release.Namespace }}.svc
- kfserving-webhook-server-service.{{ .Release.Namespace }}.svc.cluster.local
{{- end -}}

{{/*
Deep-merge .override over .base as the operator merges a ConfigMap key over its defaults:
objects merge key by key, anything else replaces. Emits {"v": <merged>} as JSON, because
fromJson only parses objects.
*/}}
{{- define "kfserving-operator.merge" -}}
{{- $base := .base -}}
{{- $override := .override -}}
{{- if and (kindIs "map" $base) (kindIs "map" $override) -}}
{{- $merged := dict -}}
{{- range $key, $value := $base -}}
{{- $_ := set $merged $key $value -}}
{{- end -}}
{{- range $key, $value := $override -}}
{{- if hasKey $base $key -}}
{{- $inner := include "kfserving-operator.merge" (dict "base" (get $base $key) "override" $value) | fromJson -}}
{{- $_ := set $merged $key $inner.v -}}
{{- else -}}
{{- $_ := set $merged $key $value -}}
{{- end -}}
{{- end -}}
{{- dict "v" $merged | toJson -}}
{{- else -}}
{{- dict "v" $override | toJson -}}
{{- end -}}
{{- end -}}

{{/*
Metadata of the two webhook configurations. The operator re-applies them with the label
app.kubernetes.io/managed-by=kfserving-operator; the chart uses the same value so the two
never fight over it (Helm tracks ownership through its annotations, not this label).
*/}}
{{- define "kfserving-operator.webhookMetadata" -}}
name: {{ .name }}
labels:
  app.kubernetes.io/name: kfserving-operator
  app.kubernetes.io/instance: {{ .root.Release.Name }}
  app.kubernetes.io/managed-by: kfserving-operator
  helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{- if .root.Values.certManager.enabled }}
annotations:
  cert-manager.io/inject-ca-from: {{ .root.Release.Namespace }}/serving-cert
{{- end }}
{{- end -}}

{{/* A webhook's clientConfig: the Service, port 443, and the path (.path). */}}
{{- define "kfserving-operator.clientConfig" -}}
service:
  name: kfserving-webhook-server-service
  namespace: {{ .root.Release.Namespace }}
  path: {{ .path }}
  port: 443
{{- end -}}
