// Package restore reconciles Restores: each enabled one becomes a Job running
// `armory worker --restore=NAME`, with a ServiceAccount and Role of its own,
// and a status computed by the rules in status.go from the references, the
// Job, the worker's Lease and what the worker reported.
package restore

import (
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

// inputsHash leaves out spec.enabled: it suspends the Job.
func inputsHash(r *v1alpha.Restore, res refs.Resolved, pod *corev1.PodTemplateSpec) string {
	spec := r.Spec.DeepCopy()
	spec.Enabled = nil
	return backup.InputsHash(spec, res, pod)
}

func identity(r *v1alpha.Restore) backup.WorkerIdentity {
	return backup.WorkerIdentity{Name: JobName(r), Namespace: r.Namespace, Labels: Labels(r), Owners: ownerRefs(r),
		Resource: "restores", ResourceName: r.Name, EventHub: r.Spec.Sink, Storage: r.Spec.Source,
		Credentials: []*v1alpha.CredentialsFrom{r.Spec.SourceCredentialsFrom, r.Spec.SinkCredentialsFrom}}
}

// NewServiceAccount builds the restore worker's ServiceAccount.
func NewServiceAccount(r *v1alpha.Restore) *corev1.ServiceAccount {
	return backup.WorkerServiceAccount(identity(r))
}

// NewRole names exactly what the restore worker may touch: its Restore
// (watched, status patched), the Storage, EventHub and Credentials it names
// and their Secrets (read), and its Lease.
func NewRole(r *v1alpha.Restore, res refs.Resolved) *rbacv1.Role {
	return backup.WorkerRole(identity(r), res)
}

// NewRoleBinding binds the worker's Role to its ServiceAccount.
func NewRoleBinding(r *v1alpha.Restore) *rbacv1.RoleBinding {
	return backup.WorkerRoleBinding(identity(r))
}
