{{- define "mlcd.labels" -}}
app.kubernetes.io/part-of: mlcd
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}

{{- define "mlcd.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag }}
{{- end -}}

{{- define "mlcd.securityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
runAsUser: 65532
capabilities: {drop: [ALL]}
seccompProfile: {type: RuntimeDefault}
{{- end -}}

{{/* The controller StatefulSet; "name" is mlcd-controller or mlcd-controller-standby. */}}
{{- define "mlcd.controller" -}}
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: {{ .name }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "mlcd.labels" .root | nindent 4 }}
    app.kubernetes.io/name: mlcd-controller
spec:
  replicas: {{ .root.Values.controller.shards }}
  serviceName: mlcd-controller
  podManagementPolicy: Parallel
  selector:
    matchLabels: {app.kubernetes.io/name: mlcd-controller, mlcd.io/replica-set: {{ .name }}}
  template:
    metadata:
      labels: {app.kubernetes.io/name: mlcd-controller, app.kubernetes.io/part-of: mlcd, mlcd.io/replica-set: {{ .name }}}
    spec:
      serviceAccountName: mlcd-controller
      automountServiceAccountToken: true
      containers:
      - name: controller
        image: {{ include "mlcd.image" .root }}
        imagePullPolicy: {{ .root.Values.image.pullPolicy }}
        args:
        - controller
        - --namespace={{ .root.Release.Namespace }}
        - --shards={{ .root.Values.controller.shards }}
        - --leader-elect
        - --lease-duration={{ .root.Values.controller.leaseDuration }}
        - --poll-interval={{ .root.Values.controller.pollInterval }}
        - --cache-dir=/cache
        - --metrics-listen=:8081
        {{- with .root.Values.controller.registryURL }}
        - --registry={{ . }}
        {{- end }}
        ports:
        - {name: metrics, containerPort: 8081}
        readinessProbe:
          httpGet: {path: /healthz, port: metrics}
        livenessProbe:
          httpGet: {path: /healthz, port: metrics}
          initialDelaySeconds: 30
        resources:
          {{- toYaml .root.Values.controller.resources | nindent 10 }}
        securityContext:
          {{- include "mlcd.securityContext" .root | nindent 10 }}
        volumeMounts:
        - {name: cache, mountPath: /cache}
        - {name: tmp, mountPath: /tmp}
      volumes:
      - {name: cache, emptyDir: {}}
      - {name: tmp, emptyDir: {}}
{{- end -}}
