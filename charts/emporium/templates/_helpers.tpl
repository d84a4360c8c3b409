{{- define "emporium.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "emporium.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "emporium.selectorLabels" -}}
app.kubernetes.io/name: {{ include "emporium.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "emporium.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "emporium.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* The notification consumer's pods: a name of their own, so the StatefulSet's selector and the
Services never match them. */}}
{{- define "emporium.notifySelectorLabels" -}}
app.kubernetes.io/name: {{ printf "%s-notify" (include "emporium.name" .) | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: notify
{{- end -}}

{{- define "emporium.notifyLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "emporium.notifySelectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "emporium.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "emporium.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "emporium.secretName" -}}
{{- default (include "emporium.fullname" .) .Values.secrets.existingSecret -}}
{{- end -}}

{{- define "emporium.peersService" -}}
{{- printf "%s-peers" (include "emporium.fullname" .) -}}
{{- end -}}

{{- define "emporium.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* Settings that cannot be expressed in values.schema.json: fail the render with a message. */}}
{{- define "emporium.validate" -}}
{{- $v := .Values -}}
{{- if and (gt (int $v.replicaCount) 1) (not $v.cluster.enabled) -}}
{{- fail "replicaCount > 1 needs cluster.enabled=true: without it every pod would own every shard" -}}
{{- end -}}
{{- if and (gt (int $v.replicaCount) 1) (ne $v.store.kind "mongodb") -}}
{{- fail "replicaCount > 1 needs store.kind=mongodb: the embedded store is one pod's own" -}}
{{- end -}}
{{- if and (eq $v.store.kind "sled") (not $v.persistence.enabled) -}}
{{- fail "store.kind=sled keeps the store in the data dir: it needs persistence.enabled=true" -}}
{{- end -}}
{{- /* the ALB may keep sending for its deregistration delay; the pod serves through it, then hands off */ -}}
{{- $drain := $v.shutdown.preStopSleepSeconds -}}
{{- if and $v.ingress.enabled (gt (int $v.ingress.deregistrationDelaySeconds) (int $drain)) -}}
{{- $drain = $v.ingress.deregistrationDelaySeconds -}}
{{- end -}}
{{- $need := add $drain $v.config.shutdownGraceSecs $v.shutdown.handoffSeconds -}}
{{- if le (int $v.shutdown.terminationGracePeriodSeconds) (int $need) -}}
{{- fail (printf "shutdown.terminationGracePeriodSeconds (%v) must exceed max(preStopSleepSeconds, ingress.deregistrationDelaySeconds) + config.shutdownGraceSecs + handoffSeconds (%v)" $v.shutdown.terminationGracePeriodSeconds $need) -}}
{{- end -}}
{{- if and $v.ingress.enabled $v.networkPolicy.enabled (not $v.networkPolicy.apiFromCidrs) (not $v.networkPolicy.apiFromNamespaces) -}}
{{- fail "ingress.enabled with networkPolicy.enabled needs networkPolicy.apiFromCidrs (the VPC range the load balancer sends from)" -}}
{{- end -}}
{{- if and (not $v.secrets.existingSecret) (eq $v.store.kind "mongodb") (not $v.secrets.storeUrl) -}}
{{- fail "store.kind=mongodb needs secrets.storeUrl or secrets.existingSecret" -}}
{{- end -}}
{{- if and (not $v.secrets.existingSecret) $v.redis.enabled (not $v.secrets.redisUrl) -}}
{{- fail "redis.enabled needs secrets.redisUrl or secrets.existingSecret" -}}
{{- end -}}
{{- if and (not $v.secrets.existingSecret) $v.amqp.enabled (not $v.secrets.amqpUrl) -}}
{{- fail "amqp.enabled needs secrets.amqpUrl or secrets.existingSecret" -}}
{{- end -}}
{{- if $v.notify.enabled -}}
{{- if not $v.amqp.enabled -}}
{{- fail "notify.enabled needs amqp.enabled: the consumer reads the order events from that broker" -}}
{{- end -}}
{{- if not $v.notify.mailFrom -}}
{{- fail "notify.enabled needs notify.mailFrom (the sender of every email)" -}}
{{- end -}}
{{- if and (not $v.notify.secrets.existingSecret) (or (not $v.notify.secrets.smtpUrl) (not $v.notify.secrets.redisUrl)) -}}
{{- fail "notify.enabled needs notify.secrets.smtpUrl and notify.secrets.redisUrl, or notify.secrets.existingSecret" -}}
{{- end -}}
{{- end -}}
{{- end -}}
