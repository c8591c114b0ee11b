{{- define "palisade.labels" -}}
app.kubernetes.io/name: palisade
app.kubernetes.io/part-of: palisade
{{- end }}

{{- define "palisade.required" -}}
{{- $_ := required "image is required" .Values.image -}}
{{- $_ := required "proxyImage is required" .Values.proxyImage -}}
{{- $_ := required "caBundle is required (--set-file caBundle=roots.pem)" .Values.caBundle -}}
{{- end }}

{{- define "palisade.clientConfig" -}}
{{- if .root.Values.webhookURL }}
url: {{ printf "%s%s" (trimSuffix "/" .root.Values.webhookURL) .path | quote }}
{{- else }}
service:
  name: palisade
  namespace: {{ .root.Values.namespace }}
  path: {{ .path }}
  port: 443
{{- end }}
caBundle: {{ .root.Values.caBundle | b64enc }}
{{- end }}
