{{- define "model-server.deployment" -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Values.model.name }}
  labels:
    {{- include "model.labels" . | nindent 4 }}
  annotations:
    mlcd.io/model: {{ .Values.model.name }}
    mlcd.io/model-version: {{ .Values.model.version | quote }}
spec:
  {{- if not .Values.autoscaling.enabled }}
  # With autoscaling the HPA owns replicas (as Helm's starter chart does).
  replicas: {{ .Values.model.replicas }}
  {{- end }}
  selector:
    matchLabels:
      app.kubernetes.io/name: {{ .Values.model.name }}
  template:
    metadata:
      labels:
        {{- include "model.labels" . | nindent 8 }}
      annotations:
        mlcd.io/model-version: {{ .Values.model.version | quote }}
    spec:
      containers:
      - name: server
        image: "{{ .Values.image.repository }}:{{ .Values.model.version }}"
        env:
        - name: MODEL_NAME
          value: {{ .Values.model.name }}
        - name: MODEL_VERSION
          value: {{ .Values.model.version | quote }}
        ports:
        - {name: http, containerPort: 8080}
        resources:
          requests:
            cpu: {{ .Values.resources.requests.cpu }}
            memory: {{ .Values.resources.requests.memory }}
          {{- if gt (int .Values.gpu) 0 }}
          limits:
            nvidia.com/gpu: {{ .Values.gpu }}
          {{- end }}
      {{- if gt (int .Values.gpu) 0 }}
      tolerations:
      - {key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}
      {{- end }}
{{- end -}}
