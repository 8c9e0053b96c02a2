package backup

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"sort"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/kannika/armory/apis/kannika/v1alpha"
	"github.com/kannika/armory/pkg/controller/refs"
	"github.com/kannika/armory/pkg/workerlease"
)

// Config holds the controller's settings that shape the worker Deployments.
type Config struct {
	// Image of the worker container; it must have armory on its PATH.
	Image string
	// ImagePullPolicy of the worker container; empty means Kubernetes' default.
	ImagePullPolicy corev1.PullPolicy
}

const (
	// InputsHashAnnotation on the pod template is a hash of everything the
	// worker is built from. A change rolls the worker; an unchanged Backup
	// never updates its Deployment.
	InputsHashAnnotation = "kannika.io/inputs-hash"

	// ContainerName is the worker container's name.
	ContainerName = "worker"
	// MetricsPort and HealthPort are the worker's default ports.
	MetricsPort = 8080
	HealthPort  = 8081
	// StorageMountPath is where a volume Storage is mounted in the worker.
	StorageMountPath = workerlease.DefaultStoragePath
	// workerUID is the non-root user the worker runs as.
	workerUID = 65532
	// terminationGracePeriod lets the worker upload its open segments on
	// SIGTERM before it is killed.
	terminationGracePeriod = 60
)

// DeploymentName is the name of a Backup's Deployment (and of its worker's
// Lease, ServiceAccount and Role).
func DeploymentName(b *v1alpha.Backup) string { return workerlease.ForBackup(b.Name) }

// Labels are the recommended labels of everything made for a Backup.
func Labels(b *v1alpha.Backup) map[string]string {
	l := selectorLabels(b)
	l["app.kubernetes.io/part-of"] = workerlease.PartOfValue
	l["app.kubernetes.io/managed-by"] = "armory-controller"
	return l
}

// selectorLabels select a Backup's worker pods; they never change.
func selectorLabels(b *v1alpha.Backup) map[string]string {
	return map[string]string{
		"app.kubernetes.io/name":      "armory",
		"app.kubernetes.io/instance":  b.Name,
		"app.kubernetes.io/component": "backup-worker",
		workerlease.BackupLabel:       b.Name,
	}
}

// WorkerCommand is the worker's command line: only the Backup's name. The
// worker reads everything else, secrets included, from the API server.
func WorkerCommand(b *v1alpha.Backup) []string {
	return []string{"armory", "worker", "--backup=" + b.Name}
}

// DesiredReplicas is 1 when the worker should run: enabled, with an enabled
// stream, and nothing it references missing. Otherwise 0, which keeps the
// Deployment (and resuming continues where it stopped).
func DesiredReplicas(b *v1alpha.Backup, r refs.Resolved) int32 {
	if isPaused(b) || len(r.Problems) > 0 {
		return 0
	}
	return 1
}

// WorkerPod is the pod template every worker runs in, Backup or Restore:
// non-root, read-only root filesystem, no capabilities, the volume
// Storage mounted if there is one, probes on the health port.
func WorkerPod(labels map[string]string, serviceAccount string, command []string, storage *v1alpha.Storage, cfg Config) corev1.PodTemplateSpec {
	pod := corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: labels},
		Spec: corev1.PodSpec{
			ServiceAccountName:            serviceAccount,
			TerminationGracePeriodSeconds: ptr.To[int64](terminationGracePeriod),
			SecurityContext: &corev1.PodSecurityContext{
				RunAsNonRoot:   ptr.To(true),
				RunAsUser:      ptr.To[int64](workerUID),
				RunAsGroup:     ptr.To[int64](workerUID),
				FSGroup:        ptr.To[int64](workerUID),
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
			Containers: []corev1.Container{{
				Name:            ContainerName,
				Image:           cfg.Image,
				ImagePullPolicy: cfg.ImagePullPolicy,
				Command:         command,
				Env: []corev1.EnvVar{
					// The downward API, not literals: the worker's identity in its Lease.
					{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
					{Name: "POD_NAMESPACE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}},
				},
				Ports: []corev1.ContainerPort{
					{Name: "metrics", ContainerPort: MetricsPort, Protocol: corev1.ProtocolTCP},
					{Name: "health", ContainerPort: HealthPort, Protocol: corev1.ProtocolTCP},
				},
				LivenessProbe:  httpProbe("/healthz", 3),
				ReadinessProbe: httpProbe("/readyz", 1),
				// The request is what a worker at its default
				// --memory-budget (256Mi) uses at its peak: the budget
				// plus what the runtime holds beyond Go's memory limit
				// (docs/worker.md, "Memory"), so the scheduler reserves
				// it; the limit leaves room for a larger budget.
				Resources: corev1.ResourceRequirements{
					Requests: corev1.ResourceList{
						corev1.ResourceCPU:    resource.MustParse("100m"),
						corev1.ResourceMemory: resource.MustParse("384Mi"),
					},
					Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Gi")},
				},
				SecurityContext: &corev1.SecurityContext{
					AllowPrivilegeEscalation: ptr.To(false),
					ReadOnlyRootFilesystem:   ptr.To(true),
					Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
				},
				VolumeMounts: []corev1.VolumeMount{{Name: "tmp", MountPath: "/tmp"}},
			}},
			Volumes: []corev1.Volume{{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
		},
	}
	if storage != nil && storage.Spec.Volume != nil {
		pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{Name: "storage", VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: refs.PVCName(storage)},
		}})
		c := &pod.Spec.Containers[0]
		c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: "storage", MountPath: StorageMountPath})
	}
	return pod
}

// NewDeployment builds a Backup's Deployment. It is a pure function of the
// Backup, what it references and the controller's settings.
func NewDeployment(b *v1alpha.Backup, r refs.Resolved, cfg Config) *appsv1.Deployment {
	pod := WorkerPod(Labels(b), DeploymentName(b), WorkerCommand(b), r.Storage, cfg)
	pod.Annotations = map[string]string{InputsHashAnnotation: inputsHash(b, r, &pod)}

	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{
			Name:            DeploymentName(b),
			Namespace:       b.Namespace,
			Labels:          Labels(b),
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(b, v1alpha.SchemeGroupVersion.WithKind("Backup"))},
		},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(DesiredReplicas(b, r)),
			Selector: &metav1.LabelSelector{MatchLabels: selectorLabels(b)},
			// Recreate: the old worker stops (and releases its Lease) before
			// the new one starts, so two never compete for the Lease.
			Strategy:             appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType},
			RevisionHistoryLimit: ptr.To[int32](3),
			Template:             pod,
		},
	}
}

func httpProbe(path string, failureThreshold int32) *corev1.Probe {
	return &corev1.Probe{
		ProbeHandler:     corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromString("health")}},
		PeriodSeconds:    10,
		TimeoutSeconds:   5,
		FailureThreshold: failureThreshold,
	}
}

// hashInputs are what a worker is built from: its resource's spec (with
// what the worker follows while it runs left out by the caller), what it
// references, and its pod template. Secrets are represented by their
// resourceVersion, never their data: rotating a Secret rolls the worker,
// which reads the new value when it starts.
type hashInputs struct {
	Spec        any                                `json:"spec"`
	EventHub    *v1alpha.EventHubSpec              `json:"eventHub,omitempty"`
	Storage     *v1alpha.StorageSpec               `json:"storage,omitempty"`
	Credentials map[string]v1alpha.CredentialsSpec `json:"credentials,omitempty"`
	Secrets     []string                           `json:"secrets,omitempty"`
	Pod         *corev1.PodTemplateSpec            `json:"pod"`
}

// InputsHash is a short hash of a worker's inputs, for the pod template's
// InputsHashAnnotation.
func InputsHash(spec any, r refs.Resolved, pod *corev1.PodTemplateSpec) string {
	in := hashInputs{Spec: spec, Pod: pod, Credentials: map[string]v1alpha.CredentialsSpec{}}
	if r.EventHub != nil {
		in.EventHub = &r.EventHub.Spec
	}
	if r.Storage != nil {
		in.Storage = &r.Storage.Spec
	}
	for _, c := range []*v1alpha.Credentials{r.SourceCredentials, r.SinkCredentials} {
		if c != nil {
			in.Credentials[c.Name] = c.Spec
		}
	}
	for name, s := range r.Secrets {
		in.Secrets = append(in.Secrets, name+"@"+s.ResourceVersion)
	}
	sort.Strings(in.Secrets)
	data, err := json.Marshal(in)
	if err != nil {
		panic("marshal hash inputs: " + err.Error()) // plain structs: cannot fail
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:8])
}

// inputsHash leaves out pausing (spec.enabled and streams[].enabled): the
// replica count pauses the Backup, and the worker follows its streams'
// enabled flags while it runs, so neither needs a new pod.
func inputsHash(b *v1alpha.Backup, r refs.Resolved, pod *corev1.PodTemplateSpec) string {
	spec := b.Spec.DeepCopy()
	spec.Enabled = nil
	for i := range spec.Streams {
		spec.Streams[i].Enabled = nil
	}
	return InputsHash(spec, r, pod)
}

func isPaused(b *v1alpha.Backup) bool {
	if b.Spec.Enabled != nil && !*b.Spec.Enabled {
		return true
	}
	return len(EnabledStreams(b)) == 0
}

// EnabledStreams lists the streams that are not disabled.
func EnabledStreams(b *v1alpha.Backup) []v1alpha.BackupStream {
	var out []v1alpha.BackupStream
	for _, s := range b.Spec.Streams {
		if s.Enabled == nil || *s.Enabled {
			out = append(out, s)
		}
	}
	return out
}
