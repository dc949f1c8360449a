{{/* Names and labels. */}}
{{- define "attestream.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "attestream.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "attestream.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "attestream.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: attestream
{{- end -}}

{{/* Selector labels of one component: (dict "root" $ "component" "detect"). */}}
{{- define "attestream.selectorLabels" -}}
app.kubernetes.io/name: {{ include "attestream.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "attestream.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "attestream.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "attestream.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The Secret holding one secret setting: (dict "root" $ "secret" .Values.ledgerKey
     "name" "ledger-key"). existingSecret when set, else the chart's own. */}}
{{- define "attestream.secretName" -}}
{{- if .secret.existingSecret -}}
{{- .secret.existingSecret -}}
{{- else -}}
{{- printf "%s-%s" (include "attestream.fullname" .root) .name -}}
{{- end -}}
{{- end -}}

{{/* One secret setting as an environment variable:
     (dict "root" $ "env" "ATTESTREAM_LEDGER_KEY" "secret" .Values.ledgerKey "name" "ledger-key"). */}}
{{- define "attestream.secretEnv" -}}
- name: {{ .env }}
  valueFrom:
    secretKeyRef:
      name: {{ include "attestream.secretName" . }}
      key: {{ .secret.secretKey }}
{{- end -}}

{{/* Refusals: every combination of values the chart must not deploy. */}}
{{- define "attestream.validate" -}}
{{- $partitions := int .Values.kafka.topicPartitions -}}
{{- if and .Values.detect.enabled (gt (int .Values.detect.replicas) $partitions) -}}
{{- fail (printf "detect.replicas (%d) exceeds kafka.topicPartitions (%d): a detect worker beyond the partition count gets no partition" (int .Values.detect.replicas) $partitions) -}}
{{- end -}}
{{- if and .Values.sequencer.enabled (gt (int .Values.sequencer.replicas) $partitions) -}}
{{- fail (printf "sequencer.replicas (%d) exceeds kafka.topicPartitions (%d): a sequencer beyond the partition count writes no chain" (int .Values.sequencer.replicas) $partitions) -}}
{{- end -}}
{{- if and .Values.anchor.enabled (ne (int .Values.anchor.replicas) 1) -}}
{{- fail (printf "anchor.replicas must be 1, not %d: two anchor services would both send anchor transactions from one account" (int .Values.anchor.replicas)) -}}
{{- end -}}
{{- if and .Values.serve.enabled (ne (int .Values.serve.replicas) 1) -}}
{{- fail (printf "serve.replicas must be 1, not %d: the server is the access chain's only writer" (int .Values.serve.replicas)) -}}
{{- end -}}
{{- range $name := list "ATTESTREAM_CLICKHOUSE_URL" "ATTESTREAM_RPC_URL" "ATTESTREAM_LEDGER_KEY" "ATTESTREAM_ANCHOR_KEY" -}}
{{- if hasKey $.Values.settings $name -}}
{{- fail (printf "settings.%s is a secret and would land in a ConfigMap: use the chart's secret values or existingSecret" $name) -}}
{{- end -}}
{{- end -}}
{{- range $key := list "clickhouse" "rpc" -}}
{{- $secret := index $.Values $key -}}
{{- if and $secret.url $secret.existingSecret -}}
{{- fail (printf "%s: set url or existingSecret, not both" $key) -}}
{{- end -}}
{{- end -}}
{{- range $key := list "ledgerKey" "anchorKey" -}}
{{- $secret := index $.Values $key -}}
{{- if and $secret.value $secret.existingSecret -}}
{{- fail (printf "%s: set value or existingSecret, not both" $key) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Readiness: the process's `attestream_<process>_ready` gauge is 1 (docs/operations.md,
     "Readiness"); the metrics endpoint itself answers whatever the gauge says. */}}
{{- define "attestream.readyProbe" -}}
exec:
  command:
    - python
    - -c
    - |
      import sys, urllib.request
      body = urllib.request.urlopen("http://127.0.0.1:{{ .port }}/metrics", timeout=3).read()
      sys.exit(0 if b"\nattestream_{{ .process }}_ready 1.0\n" in b"\n" + body else 1)
periodSeconds: 10
timeoutSeconds: 5
failureThreshold: 3
{{- end -}}

{{/* Liveness: the metrics endpoint answers. A process waiting for Kafka, ClickHouse or the
     JSON-RPC stays live (it backs off on its own) and is only not ready. */}}
{{- define "attestream.liveProbe" -}}
httpGet:
  path: /metrics
  port: metrics
initialDelaySeconds: 20
periodSeconds: 20
timeoutSeconds: 5
failureThreshold: 6
{{- end -}}

{{/* The parts every pod shares: (dict "root" $ "component" .Values.detect). */}}
{{- define "attestream.podCommon" -}}
serviceAccountName: {{ include "attestream.serviceAccountName" .root }}
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .root.Values.podSecurityContext | nindent 2 }}
{{- with .component.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .component.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .component.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* The container fields every process shares. */}}
{{- define "attestream.containerCommon" -}}
image: {{ include "attestream.image" .root }}
imagePullPolicy: {{ .root.Values.image.pullPolicy }}
securityContext:
  {{- toYaml .root.Values.securityContext | nindent 2 }}
envFrom:
  - configMapRef:
      name: {{ include "attestream.fullname" .root }}-settings
resources:
  {{- toYaml .component.resources | nindent 2 }}
{{- end -}}

{{/* A volume from a claim, or an emptyDir when the claim is empty: (dict "name" "x" "claim" ""). */}}
{{- define "attestream.volume" -}}
- name: {{ .name }}
{{- if .claim }}
  persistentVolumeClaim:
    claimName: {{ .claim }}
{{- else }}
  emptyDir: {}
{{- end }}
{{- end -}}
