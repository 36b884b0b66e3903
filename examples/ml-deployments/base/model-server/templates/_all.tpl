{{- /* Every object of a model server, from the model chart's values. */ -}}
{{- define "model-server.all" -}}
{{ include "model-server.deployment" . }}
---
{{ include "model-server.service" . }}
{{- if .Values.autoscaling.enabled }}
---
{{ include "model-server.hpa" . }}
{{- end }}
{{- if (.Values.smokeCheck).enabled }}
---
{{ include "model-server.smoke-check" . }}
{{- end }}
{{- end -}}
