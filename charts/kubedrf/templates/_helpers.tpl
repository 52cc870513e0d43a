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

{{/* The ValidatingAdmissionPolicy that keeps managed nodes for tasks, and its binding. */}}
{{- define "kubedrf.admissionPolicy" -}}
{{- printf "%s-managed-nodes" (include "kubedrf.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The admission webhook's Service, Secret and MutatingWebhookConfiguration. */}}
{{- define "kubedrf.webhook" -}}
{{- printf "%s-webhook" (include "kubedrf.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Where the master reads the webhook's certificate (the Secret, mounted). */}}
{{- define "kubedrf.webhookCertDir" -}}
/etc/kubedrf/webhook
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

{{/*
CEL for the managed-nodes admission policy (admissionpolicy.yaml). Each takes the name of the
object to judge ("object", or "oldObject" on UPDATE), so the rule reads the same for both.
*/}}

{{/* The labels every task Pod carries (kubedrf.api.conventions), as a CEL list. */}}
{{- define "kubedrf.admission.taskLabels" -}}
['kubedrf.io/framework', 'kubedrf.io/role', 'kubedrf.io/offer']
{{- end }}

{{/* (list . OBJECT): a toleration with the managed taint's key, or a keyless Exists (tolerates every taint). */}}
{{- define "kubedrf.admission.tolerates" -}}
{{- $ctx := index . 0 }}
{{- printf "%[1]s.spec.?tolerations.orValue([]).exists(t, t.?key.orValue('') == '%[2]s' || (t.?key.orValue('') == '' && t.?operator.orValue('') == 'Exists'))" (index . 1) $ctx.Values.managedTaint }}
{{- end }}

{{/* OBJECT: controlled by a DaemonSet. */}}
{{- define "kubedrf.admission.daemonSet" -}}
{{- printf "%s.metadata.?ownerReferences.orValue([]).exists(r, r.?controller.orValue(false) && r.kind == 'DaemonSet' && r.apiVersion.startsWith('apps/'))" . }}
{{- end }}

{{/* (list OBJECT LABEL): OBJECT carries LABEL, not empty. */}}
{{- define "kubedrf.admission.has" -}}
{{- printf "%[2]s in %[1]s.metadata.?labels.orValue({}) && %[1]s.metadata.labels[%[2]s] != ''" (index . 0) (index . 1) }}
{{- end }}

{{/* OBJECT: carries every task label. */}}
{{- define "kubedrf.admission.labelled" -}}
{{- printf "%s.all(l, %s)" (include "kubedrf.admission.taskLabels" .) (include "kubedrf.admission.has" (list . "l")) }}
{{- end }}

{{/* (list . EXEMPT WHAT): the refusal, WHAT naming the missing labels. No single quotes: it is also a CEL string. */}}
{{- define "kubedrf.admission.message" -}}
{{- $ctx := index . 0 }}
{{- printf "this Pod tolerates the taint %s of the nodes kubedrf manages but lacks %s. Only kubedrf tasks run there, each judged by the kubedrf master against the Offer it names: launch it on an Offer (labels kubedrf.io/framework, kubedrf.io/role and kubedrf.io/offer), drop the toleration, run it from a DaemonSet, or run it in a namespace exempt from this rule (%s)." $ctx.Values.managedTaint (index . 2) (join ", " (index . 1)) }}
{{- end }}

{{/* The ValidatingAdmissionPolicy that sends every claim on an offer through the master's binder. */}}
{{- define "kubedrf.claimPolicy" -}}
{{- printf "%s-offer-claims" (include "kubedrf.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Who may add or change a Pod's kubedrf.io/offer label (the master, releasing a gated Pod), as a CEL list. */}}
{{- define "kubedrf.claimPolicy.masterUsers" -}}
{{- $sa := printf "system:serviceaccount:%s:%s" .Release.Namespace (include "kubedrf.master" .) }}
{{- $users := prepend .Values.admissionPolicy.masterUsers $sa | uniq }}
{{- $quoted := list }}
{{- range $users }}{{ $quoted = append $quoted (printf "'%s'" .) }}{{ end }}
{{- printf "[%s]" (join ", " $quoted) }}
{{- end }}
