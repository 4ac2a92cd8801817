{{/* Names. */}}
{{- define "meshlet.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "meshlet.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "meshlet.serviceAccountName" -}}
{{- default (include "meshlet.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "meshlet.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "meshlet.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "meshlet.selectorLabels" -}}
app.kubernetes.io/name: {{ include "meshlet.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "meshlet.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* Paths inside the containers. Host paths come from values; these stay fixed. */}}
{{- define "meshlet.cgroupMount" -}}/run/meshlet-host/cgroup{{- end -}}
{{- define "meshlet.cniBinMount" -}}/run/meshlet-host/cni/bin{{- end -}}
{{- define "meshlet.cniConfMount" -}}/run/meshlet-host/cni/net.d{{- end -}}

{{/*
The agent's security context: the capabilities in values (everything else dropped), or
privileged as the fallback.
*/}}
{{- define "meshlet.securityContext" -}}
{{- if .Values.privileged }}
privileged: true
{{- else }}
privileged: false
allowPrivilegeEscalation: false
capabilities:
  drop: [ALL]
  add:
  {{- range .Values.capabilities }}
  - {{ . }}
  {{- end }}
{{- end }}
{{- if and .Values.appArmorProfile (semverCompare ">=1.30-0" .Capabilities.KubeVersion.Version) }}
appArmorProfile:
  type: {{ .Values.appArmorProfile }}
{{- end }}
{{- end -}}

{{/* Pod annotations for AppArmor on clusters older than 1.30 (no securityContext field). */}}
{{- define "meshlet.appArmorAnnotations" -}}
{{- if and .root.Values.appArmorProfile (semverCompare "<1.30-0" .root.Capabilities.KubeVersion.Version) }}
{{- range .containers }}
container.apparmor.security.beta.kubernetes.io/{{ . }}: {{ lower $.root.Values.appArmorProfile }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Volumes of the agent and of the cleanup pods (host paths). */}}
{{- define "meshlet.hostVolumes" -}}
- name: bpffs
  hostPath:
    path: {{ .Values.bpffsRoot }}
    type: Directory
- name: cgroup
  hostPath:
    path: {{ .Values.cgroupRoot }}
    type: Directory
- name: netns
  hostPath:
    path: /var/run/netns
    type: DirectoryOrCreate
- name: run-meshlet
  hostPath:
    path: /var/run/meshlet
    type: DirectoryOrCreate
- name: cni-bin
  hostPath:
    path: {{ .Values.cni.binDir }}
    type: DirectoryOrCreate
- name: cni-conf
  hostPath:
    path: {{ .Values.cni.confDir }}
    type: DirectoryOrCreate
{{- end -}}

{{/*
Mounts of a container that touches the datapath. bpffs: Bidirectional only when privileged
(the API server accepts it for privileged containers only); the agent does not mount bpffs
itself, so HostToContainer is enough otherwise.
*/}}
{{- define "meshlet.datapathMounts" -}}
- name: bpffs
  mountPath: {{ .Values.bpffsRoot }}
  mountPropagation: {{ if .Values.privileged }}Bidirectional{{ else }}HostToContainer{{ end }}
- name: cgroup
  mountPath: {{ include "meshlet.cgroupMount" . }}
- name: netns
  mountPath: /var/run/netns
  mountPropagation: HostToContainer
- name: run-meshlet
  mountPath: /var/run/meshlet
{{- end -}}

{{- define "meshlet.cniMounts" -}}
- name: cni-bin
  mountPath: {{ include "meshlet.cniBinMount" . }}
- name: cni-conf
  mountPath: {{ include "meshlet.cniConfMount" . }}
{{- end -}}

{{- define "meshlet.tolerations" -}}
- operator: Exists
{{- with .Values.tolerations }}
{{ toYaml . }}
{{- end }}
{{- end -}}
