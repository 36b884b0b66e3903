{{- define "model-server.smoke-check" -}}

# A PreSync hook (docs/sync.md, Waves and hooks): before the model server
# changes, a Job checks that the model artifact of the version loads and
# answers a known request. If it fails, nothing else changes and the app
# says why; it is deleted once it succeeded.
apiVersion: batch/v1
kind: Job
metadata:
  name: {{ .Values.model.name }}-smoke-check
  annotations:
    argocd.argoproj.io/hook: PreSync
    argocd.argoproj.io/hook-delete-policy: BeforeHookCreation,HookSucceeded
  labels:
    {{- include "model.labels" . | nindent 4 }}
spec:
  backoffLimit: 0
  activeDeadlineSeconds: {{ .Values.smokeCheck.timeoutSeconds }}
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: smoke-check
        image: "{{ .Values.image.repository }}:{{ .Values.model.version }}"
        args: ["--smoke-check", "--model={{ .Values.model.name }}", "--version={{ .Values.model.version }}"]
{{- end -}}
