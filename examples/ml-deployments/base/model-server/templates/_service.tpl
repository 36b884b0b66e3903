{{- define "model-server.service" -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ .Values.model.name }}
  labels:
    {{- include "model.labels" . | nindent 4 }}
spec:
  selector:
    app.kubernetes.io/name: {{ .Values.model.name }}
  ports:
  - {name: http, port: 80, targetPort: http}
{{- end -}}
