{{/* The labels every object of the chart carries, as deploy/ does. */}}
{{- define "armory.labels" -}}
app.kubernetes.io/part-of: armory
{{- end }}
{{- define "armory.controllerLabels" -}}
app.kubernetes.io/component: controller
app.kubernetes.io/name: armory
{{- end }}
