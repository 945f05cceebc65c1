{{/* Chart name, truncated to the 63 characters Kubernetes allows in a label. */}}
{{- define "krawl.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "krawl.fullname" -}}
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

{{- define "krawl.selectorLabels" -}}
app.kubernetes.io/name: {{ include "krawl.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "krawl.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "krawl.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: agent
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "krawl.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "krawl.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "krawl.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/* The Secret holding the control-plane credential: an existing one, or the chart's. */}}
{{- define "krawl.credentialsSecretName" -}}
{{- if .Values.controlPlane.existingSecret }}
{{- .Values.controlPlane.existingSecret }}
{{- else }}
{{- printf "%s-credentials" (include "krawl.fullname" .) }}
{{- end }}
{{- end }}

{{- define "krawl.hasCredential" -}}
{{- if or .Values.controlPlane.existingSecret .Values.controlPlane.token }}true{{ end }}
{{- end }}

{{/*
TOML rendering. Helm's toToml writes numbers from values as floats (5.0, 4.194304e+06), which
the agent's integer keys refuse, so the config is rendered here: one [table] per top-level key,
its keys one a line, nested tables inline, lists of tables as [[table.key]]. Strings go through toJson (JSON escapes are valid
TOML basic-string escapes).
*/}}
{{- define "krawl.tomlKey" -}}
{{- if regexMatch "^[A-Za-z0-9_-]+$" . }}{{ . }}{{ else }}{{ toJson . }}{{ end }}
{{- end }}

{{- define "krawl.tomlValue" -}}
{{- $v := . }}
{{- $k := kindOf $v }}
{{- if eq $k "map" }}
{{- if eq (len $v) 0 }}{}{{ else }}{ {{ range $i, $key := keys $v | sortAlpha }}{{ if $i }}, {{ end }}{{ include "krawl.tomlKey" $key }} = {{ include "krawl.tomlValue" (get $v $key) }}{{ end }} }{{ end }}
{{- else if eq $k "slice" }}
{{- $items := list }}
{{- range $v }}{{ $items = append $items (include "krawl.tomlValue" .) }}{{ end }}
{{- printf "[%s]" (join ", " $items) }}
{{- else if eq $k "string" }}
{{- toJson $v }}
{{- else if eq $k "bool" }}
{{- ternary "true" "false" $v }}
{{- else if eq $k "float64" }}
{{- if eq (float64 (int64 $v)) $v }}{{ int64 $v }}{{ else }}{{ $v }}{{ end }}
{{- else if or (eq $k "int") (eq $k "int64") (eq $k "uint64") }}
{{- $v }}
{{- else }}
{{- fail (printf "config: cannot write a %s value as TOML" $k) }}
{{- end }}
{{- end }}

{{/* The agent config the chart mounts: .Values.config plus what the chart owns. */}}
{{- define "krawl.config" -}}
{{- $cfg := deepCopy .Values.config }}
{{- $agent := default (dict) (get $cfg "agent") }}
{{- $_ := set $agent "health_listen" (printf "0.0.0.0:%d" (int .Values.health.port)) }}
{{- $_ = set $cfg "agent" $agent }}
{{- $cp := default (dict) (get $cfg "control_plane") }}
{{- if .Values.controlPlane.url }}
{{- $_ = set $cp "url" .Values.controlPlane.url }}
{{- end }}
{{- if include "krawl.hasCredential" . }}
{{- $_ = set $cp "auth" (dict .Values.controlPlane.authType "env://KRAWL_CONTROL_PLANE_TOKEN") }}
{{- end }}
{{- if .Values.caBundle.enabled }}
{{- $_ = set $cp "ca_file" (printf "%s/%s" .Values.caBundle.mountPath .Values.caBundle.key) }}
{{- end }}
{{- $_ = set $cfg "control_plane" $cp }}
# Rendered by the krawl Helm chart from .Values.config; keys: deploy/krawl.example.toml.
{{- range $table := keys $cfg | sortAlpha }}
{{- $t := get $cfg $table }}
[{{ include "krawl.tomlKey" $table }}]
{{- range $key := keys $t | sortAlpha }}
{{- if not (include "krawl.isTableArray" (get $t $key)) }}
{{ include "krawl.tomlKey" $key }} = {{ include "krawl.tomlValue" (get $t $key) }}
{{- end }}
{{- end }}
{{- range $key := keys $t | sortAlpha }}
{{- if include "krawl.isTableArray" (get $t $key) }}
{{- range $item := get $t $key }}
[[{{ include "krawl.tomlKey" $table }}.{{ include "krawl.tomlKey" $key }}]]
{{- range $k := keys $item | sortAlpha }}
{{ include "krawl.tomlKey" $k }} = {{ include "krawl.tomlValue" (get $item $k) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* A non-empty list of maps (e.g. policy.floors): written as [[table.key]] tables, one per
item, so that long entries stay one key a line. */}}
{{- define "krawl.isTableArray" -}}
{{- if and (eq (kindOf .) "slice") (gt (len .) 0) }}{{ if eq (kindOf (first .)) "map" }}true{{ end }}{{ end }}
{{- end }}
