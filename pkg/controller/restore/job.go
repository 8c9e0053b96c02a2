// Package restore reconciles Restores: each enabled one becomes a Job running
// `armory worker --restore=NAME`, with a ServiceAccount and Role of its own,
// and a status computed by the rules in status.go from the references, the
// Job, the worker's Lease and what the worker reported.
package restore

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"sort"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/kannika/armory/apis/kannika/v1alpha"
	"github.com/kannika/armory/pkg/controller/backup"
	"github.com/kannika/armory/pkg/controller/refs"
	"github.com/kannika/armory/pkg/workerlease"
)

// backoffLimit is how many times a worker pod may fail before the Job
// gives up. Transient errors are retried inside the worker and interrupted
// runs (exit 3, disruptions) are not counted, so this counts only crashes.
const backoffLimit = 4

// JobName is the name of a Restore's Job (and of its worker's Lease,
// ServiceAccount and Role).
func JobName(r *v1alpha.Restore) string { return workerlease.ForRestore(r.Name) }

// Labels are the recommended labels of everything made for a Restore.
func Labels(r *v1alpha.Restore) map[string]string {
	return map[string]string{
		"app.kubernetes.io/name":       "armory",
		"app.kubernetes.io/instance":   r.Name,
		"app.kubernetes.io/component":  "restore-worker",
		"app.kubernetes.io/part-of":    workerlease.PartOfValue,
		"app.kubernetes.io/managed-by": "armory-controller",
		workerlease.RestoreLabel:       r.Name,
	}
}

// WorkerCommand is the worker's command line: only the Restore's name.
func WorkerCommand(r *v1alpha.Restore) []string {
	return []string{"armory", "worker", "--restore=" + r.Name}
}

func ownerRefs(r *v1alpha.Restore) []metav1.OwnerReference {
	return []metav1.OwnerReference{*metav1.NewControllerRef(r, v1alpha.SchemeGroupVersion.WithKind("Restore"))}
}

// Enabled reports whether the Restore should run.
func Enabled(r *v1alpha.Restore) bool { return r.Spec.Enabled != nil && *r.Spec.Enabled }

// NewJob builds a Restore's Job, a pure function of the Restore, what it
// references and the controller's settings. spec.enabled false suspends it.
func NewJob(r *v1alpha.Restore, res refs.Resolved, cfg backup.Config) *batchv1.Job {
	pod := backup.WorkerPod(Labels(r), JobName(r), WorkerCommand(r), res.Storage, cfg)
	pod.Spec.RestartPolicy = corev1.RestartPolicyNever
	pod.Annotations = map[string]string{backup.InputsHashAnnotation: inputsHash(r, res, &pod)}
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: JobName(r), Namespace: r.Namespace, Labels: Labels(r), OwnerReferences: ownerRefs(r)},
		Spec: batchv1.JobSpec{
			Parallelism:  ptr.To[int32](1),
			Completions:  ptr.To[int32](1),
			BackoffLimit: ptr.To[int32](backoffLimit),
			Suspend:      ptr.To(!Enabled(r)),
			// Exit codes of `armory worker --restore`: 2 cannot go on (the
			// status says why: retrying would fail the same way), 3 stopped
			// before the end and resumes on the next run.
			PodFailurePolicy: &batchv1.PodFailurePolicy{Rules: []batchv1.PodFailurePolicyRule{
				{Action: batchv1.PodFailurePolicyActionFailJob, OnExitCodes: &batchv1.PodFailurePolicyOnExitCodesRequirement{
					ContainerName: ptr.To(backup.ContainerName), Operator: batchv1.PodFailurePolicyOnExitCodesOpIn,
					Values: []int32{workerlease.ExitRestorePermanent}}},
				{Action: batchv1.PodFailurePolicyActionIgnore, OnExitCodes: &batchv1.PodFailurePolicyOnExitCodesRequirement{
					ContainerName: ptr.To(backup.ContainerName), Operator: batchv1.PodFailurePolicyOnExitCodesOpIn,
					Values: []int32{workerlease.ExitRestoreInterrupted}}},
				{Action: batchv1.PodFailurePolicyActionIgnore, OnPodConditions: []batchv1.PodFailurePolicyOnPodConditionsPattern{
					{Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue}}},
			}},
			Template: pod,
		},
	}
}

// hashInputs are what a restore worker is built from; spec.enabled is left
// out (it suspends the Job), Secrets count by resourceVersion only.
type hashInputs struct {
	Restore     v1alpha.RestoreSpec                `json:"restore"`
	EventHub    *v1alpha.EventHubSpec              `json:"eventHub,omitempty"`
	Storage     *v1alpha.StorageSpec               `json:"storage,omitempty"`
	Credentials map[string]v1alpha.CredentialsSpec `json:"credentials,omitempty"`
	Secrets     []string                           `json:"secrets,omitempty"`
	Pod         *corev1.PodTemplateSpec            `json:"pod"`
}

func inputsHash(r *v1alpha.Restore, res refs.Resolved, pod *corev1.PodTemplateSpec) string {
	in := hashInputs{Restore: *r.Spec.DeepCopy(), Pod: pod, Credentials: map[string]v1alpha.CredentialsSpec{}}
	in.Restore.Enabled = nil
	if res.EventHub != nil {
		in.EventHub = &res.EventHub.Spec
	}
	if res.Storage != nil {
		in.Storage = &res.Storage.Spec
	}
	for _, c := range []*v1alpha.Credentials{res.SourceCredentials, res.SinkCredentials} {
		if c != nil {
			in.Credentials[c.Name] = c.Spec
		}
	}
	for name, s := range res.Secrets {
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

// NewServiceAccount builds the restore worker's ServiceAccount.
func NewServiceAccount(r *v1alpha.Restore) *corev1.ServiceAccount {
	return &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{
		Name: JobName(r), Namespace: r.Namespace, Labels: Labels(r), OwnerReferences: ownerRefs(r),
	}}
}

// NewRole names exactly what the restore worker may touch: its Restore
// (watched, status patched), the Storage, EventHub and Credentials it names
// and their Secrets (read), and its Lease.
func NewRole(r *v1alpha.Restore, res refs.Resolved) *rbacv1.Role {
	read := []string{"get"}
	rules := []rbacv1.PolicyRule{
		{APIGroups: []string{v1alpha.GroupName}, Resources: []string{"restores"}, ResourceNames: []string{r.Name}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{v1alpha.GroupName}, Resources: []string{"restores/status"}, ResourceNames: []string{r.Name}, Verbs: []string{"get", "patch"}},
		{APIGroups: []string{v1alpha.GroupName}, Resources: []string{"eventhubs"}, ResourceNames: []string{r.Spec.Sink}, Verbs: read},
		{APIGroups: []string{v1alpha.GroupName}, Resources: []string{"storages"}, ResourceNames: []string{r.Spec.Source}, Verbs: read},
	}
	var creds []string
	for _, from := range []*v1alpha.CredentialsFrom{r.Spec.SourceCredentialsFrom, r.Spec.SinkCredentialsFrom} {
		if from != nil {
			creds = append(creds, from.CredentialsRef.Name)
		}
	}
	if creds = uniqueSorted(creds); len(creds) > 0 {
		rules = append(rules, rbacv1.PolicyRule{APIGroups: []string{v1alpha.GroupName}, Resources: []string{"credentials"}, ResourceNames: creds, Verbs: read})
	}
	var secrets []string
	for _, c := range []*v1alpha.Credentials{res.SourceCredentials, res.SinkCredentials} {
		if c != nil {
			secrets = append(secrets, refs.SecretNames(c)...)
		}
	}
	if secrets = uniqueSorted(secrets); len(secrets) > 0 {
		rules = append(rules, rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: secrets, Verbs: read})
	}
	rules = append(rules,
		rbacv1.PolicyRule{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"create"}},
		rbacv1.PolicyRule{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, ResourceNames: []string{JobName(r)}, Verbs: []string{"get", "update"}},
	)
	return &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: JobName(r), Namespace: r.Namespace, Labels: Labels(r), OwnerReferences: ownerRefs(r)},
		Rules:      rules,
	}
}

// NewRoleBinding binds the worker's Role to its ServiceAccount.
func NewRoleBinding(r *v1alpha.Restore) *rbacv1.RoleBinding {
	return &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: JobName(r), Namespace: r.Namespace, Labels: Labels(r), OwnerReferences: ownerRefs(r)},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: JobName(r)},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: JobName(r), Namespace: r.Namespace}},
	}
}

func uniqueSorted(in []string) []string {
	sort.Strings(in)
	out := in[:0]
	for i, s := range in {
		if i == 0 || s != in[i-1] {
			out = append(out, s)
		}
	}
	return out
}
