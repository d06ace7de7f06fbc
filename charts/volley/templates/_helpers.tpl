{{/*
Names. Kubernetes names are at most 63 characters; the full name is cut to
50 so that every component suffix still fits.
*/}}
{{- define "volley.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 40 | trimSuffix "-" }}
{{- end }}

{{- define "volley.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "volley.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "volley.coordinator.fullname" -}}
{{- printf "%s-coordinator" (include "volley.fullname" .) }}
{{- end }}

{{- define "volley.worker.fullname" -}}
{{- printf "%s-worker" (include "volley.fullname" .) }}
{{- end }}

{{- define "volley.target.fullname" -}}
{{- printf "%s-target" (include "volley.fullname" .) }}
{{- end }}

{{/* The run Job is named after the revision: every upgrade runs the scenario anew. */}}
{{- define "volley.run.fullname" -}}
{{- printf "%s-run-%d" (include "volley.fullname" .) (int .Release.Revision) }}
{{- end }}

{{- define "volley.scenarios.fullname" -}}
{{- printf "%s-scenarios" (include "volley.fullname" .) }}
{{- end }}

{{- define "volley.report.claimName" -}}
{{- default (printf "%s-report" (include "volley.fullname" .)) .Values.run.persistence.existingClaim }}
{{- end }}

{{/* The coordinator's address as workers and `volley run` dial it: the Service name. */}}
{{- define "volley.coordinator.url" -}}
{{- printf "http://%s:%d" (include "volley.coordinator.fullname" .) (int .Values.coordinator.port) }}
{{- end }}

{{/*
Labels (https://kubernetes.io/docs/concepts/overview/working-with-objects/common-labels/).
Call with (dict "ctx" $ "component" "worker").
*/}}
{{- define "volley.labels" -}}
helm.sh/chart: {{ include "volley.chart" .ctx }}
{{ include "volley.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: volley
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "volley.selectorLabels" -}}
app.kubernetes.io/name: {{ include "volley.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "volley.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "volley.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "volley.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret and key holding the token. */}}
{{- define "volley.tokenSecretName" -}}
{{- default (printf "%s-token" (include "volley.fullname" .)) .Values.auth.existingSecret }}
{{- end }}

{{- define "volley.tokenSecretKey" -}}
{{- if .Values.auth.existingSecret }}
{{- .Values.auth.existingSecretKey }}
{{- else -}}
token
{{- end }}
{{- end }}

{{/*
The token, base64-encoded, for the chart's own Secret: auth.token when given;
otherwise the one already in the cluster (kept across upgrades); otherwise a
new random one. Offline rendering (`helm template`) cannot look it up.
*/}}
{{- define "volley.tokenB64" -}}
{{- if .Values.auth.token }}
{{- .Values.auth.token | b64enc }}
{{- else }}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "volley.tokenSecretName" .) }}
{{- if and $existing $existing.data (index $existing.data "token") }}
{{- index $existing.data "token" }}
{{- else }}
{{- randAlphaNum 32 | b64enc }}
{{- end }}
{{- end }}
{{- end }}

{{- define "volley.tokenEnv" -}}
- name: VOLLEY_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "volley.tokenSecretName" . }}
      key: {{ include "volley.tokenSecretKey" . }}
{{- end }}

{{/* Pod-level settings shared by every pod. */}}
{{- define "volley.podCommon" -}}
serviceAccountName: {{ include "volley.serviceAccountName" . }}
automountServiceAccountToken: false
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- end }}

{{- define "volley.containerSecurityContext" -}}
securityContext:
  {{- toYaml .Values.securityContext | nindent 2 }}
{{- end }}

{{/*
The `--wait-for` arguments of `volley run` in the Job and the test pod: in a
fresh install the run's pod can start before the coordinator's and the built-in
target's, and `volley run` then waits (up to its --wait) for their Services to
accept connections. No init container: the image has no shell.
*/}}
{{- define "volley.runWaitFor" -}}
- --wait-for
- {{ printf "%s:%d" (include "volley.coordinator.fullname" .) (int .Values.coordinator.port) | quote }}
{{- if .Values.target.enabled }}
- --wait-for
- {{ printf "%s:%d" (include "volley.target.fullname" .) (int .Values.target.port) | quote }}
{{- end }}
{{- end }}
