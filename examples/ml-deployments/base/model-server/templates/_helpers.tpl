{{- define "model.labels" -}}
app.kubernetes.io/name: {{ .Values.model.name }}
app.kubernetes.io/component: model-server
{{- end -}}
