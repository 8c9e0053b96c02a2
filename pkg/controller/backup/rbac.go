package backup

import (
	"sort"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kannika/armory/apis/kannika/v1alpha"
	"github.com/kannika/armory/pkg/controller/refs"
)

// A Backup's worker runs as a ServiceAccount of its own, bound to a Role that
// names exactly what that worker may touch: its Backup (watched, and its
// status patched), the EventHub, Storage and Credentials it references and
// the Secrets those name (read once when it starts), and its Lease. Nothing
// else in the namespace.

func ownerRefs(b *v1alpha.Backup) []metav1.OwnerReference {
	return []metav1.OwnerReference{*metav1.NewControllerRef(b, v1alpha.SchemeGroupVersion.WithKind("Backup"))}
}

// WorkerIdentity names a worker's ServiceAccount, Role and RoleBinding
// (all one name) and what they are made for.
type WorkerIdentity struct {
	Name, Namespace string
	Labels          map[string]string
	Owners          []metav1.OwnerReference
	// Resource and ResourceName are what the worker runs: "backups" and the
	// Backup's name, or "restores" and the Restore's.
	Resource, ResourceName string
	// EventHub, Storage and Credentials are the names its spec references.
	EventHub, Storage string
	Credentials       []*v1alpha.CredentialsFrom
}

func (w WorkerIdentity) meta() metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: w.Name, Namespace: w.Namespace, Labels: w.Labels, OwnerReferences: w.Owners}
}

// WorkerServiceAccount builds a worker's ServiceAccount.
func WorkerServiceAccount(w WorkerIdentity) *corev1.ServiceAccount {
	return &corev1.ServiceAccount{ObjectMeta: w.meta()}
}

// WorkerRole builds a worker's Role from the names in its resource's spec
// and in its Credentials, whether or not those objects exist yet, so that
// creating a missing one lets the worker read it at once.
func WorkerRole(w WorkerIdentity, r refs.Resolved) *rbacv1.Role {
	read := []string{"get"}
	rules := []rbacv1.PolicyRule{
		{APIGroups: []string{v1alpha.GroupName}, Resources: []string{w.Resource}, ResourceNames: []string{w.ResourceName}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{v1alpha.GroupName}, Resources: []string{w.Resource + "/status"}, ResourceNames: []string{w.ResourceName}, Verbs: []string{"get", "patch"}},
		{APIGroups: []string{v1alpha.GroupName}, Resources: []string{"eventhubs"}, ResourceNames: []string{w.EventHub}, Verbs: read},
		{APIGroups: []string{v1alpha.GroupName}, Resources: []string{"storages"}, ResourceNames: []string{w.Storage}, Verbs: read},
	}
	var creds []string
	for _, from := range w.Credentials {
		if from != nil {
			creds = append(creds, from.CredentialsRef.Name)
		}
	}
	if creds = uniqueSorted(creds); len(creds) > 0 {
		rules = append(rules, rbacv1.PolicyRule{APIGroups: []string{v1alpha.GroupName}, Resources: []string{"credentials"}, ResourceNames: creds, Verbs: read})
	}
	var secrets []string
	for _, c := range []*v1alpha.Credentials{r.SourceCredentials, r.SinkCredentials} {
		if c != nil {
			secrets = append(secrets, refs.SecretNames(c)...)
		}
	}
	if secrets = uniqueSorted(secrets); len(secrets) > 0 {
		rules = append(rules, rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: secrets, Verbs: read})
	}
	rules = append(rules,
		// create cannot be limited by name; get and update can.
		rbacv1.PolicyRule{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"create"}},
		rbacv1.PolicyRule{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, ResourceNames: []string{w.Name}, Verbs: []string{"get", "update"}},
	)
	return &rbacv1.Role{ObjectMeta: w.meta(), Rules: rules}
}

// WorkerRoleBinding binds a worker's Role to its ServiceAccount.
func WorkerRoleBinding(w WorkerIdentity) *rbacv1.RoleBinding {
	return &rbacv1.RoleBinding{
		ObjectMeta: w.meta(),
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: w.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: w.Name, Namespace: w.Namespace}},
	}
}

func identity(b *v1alpha.Backup) WorkerIdentity {
	return WorkerIdentity{Name: DeploymentName(b), Namespace: b.Namespace, Labels: Labels(b), Owners: ownerRefs(b),
		Resource: "backups", ResourceName: b.Name, EventHub: b.Spec.Source, Storage: b.Spec.Sink,
		Credentials: []*v1alpha.CredentialsFrom{b.Spec.SourceCredentialsFrom, b.Spec.SinkCredentialsFrom}}
}

// NewServiceAccount builds the worker's ServiceAccount.
func NewServiceAccount(b *v1alpha.Backup) *corev1.ServiceAccount {
	return WorkerServiceAccount(identity(b))
}

// NewRole builds the worker's Role.
func NewRole(b *v1alpha.Backup, r refs.Resolved) *rbacv1.Role { return WorkerRole(identity(b), r) }

// NewRoleBinding binds the worker's Role to its ServiceAccount.
func NewRoleBinding(b *v1alpha.Backup) *rbacv1.RoleBinding { return WorkerRoleBinding(identity(b)) }

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
