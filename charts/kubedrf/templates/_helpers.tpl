{{/* Names and labels shared by every template. */}}

{{- define "kubedrf.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's base name: "<release>-kubedrf", or the release name when it already says kubedrf. */}}
{{- define "kubedrf.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "kubedrf.master" -}}
{{- printf "%s-master" (include "kubedrf.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kubedrf.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/* Labels that select the master's Pods (its Service, PDB and anti-affinity use them). */}}
{{- define "kubedrf.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kubedrf.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: master
{{- end }}

{{/* Labels of every object; the component is the master's unless given (dict "ctx" . "component" "test"). */}}
{{- define "kubedrf.labels" -}}
{{- $ctx := .ctx | default . }}
{{- $component := .component | default "master" -}}
helm.sh/chart: {{ printf "%s-%s" $ctx.Chart.Name $ctx.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "kubedrf.name" $ctx }}
app.kubernetes.io/instance: {{ $ctx.Release.Name }}
app.kubernetes.io/component: {{ $component }}
app.kubernetes.io/version: {{ $ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ $ctx.Release.Service }}
app.kubernetes.io/part-of: kubedrf
{{- end }}

{{/* The restricted Pod Security Standard, for the master and the test Pod alike. */}}
{{- define "kubedrf.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "kubedrf.containerSecurityContext" -}}
runAsNonRoot: true
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end }}
