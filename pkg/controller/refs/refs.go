// Package refs resolves what a Backup or Restore references (its EventHub,
// Storage, Credentials and their Secrets) and computes the status of
// EventHubs and Storages. Everything here is pure over listers: no writes.
package refs

import (
	"fmt"
	"sort"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	corelisters "k8s.io/client-go/listers/core/v1"

	"github.com/kannika/armory/apis/kannika/v1alpha"
	listers "github.com/kannika/armory/generated/listers/kannika/v1alpha"
)

// Reasons for a reference problem, used as condition reasons and event reasons.
const (
	ReasonEventHubNotFound    = "EventHubNotFound"
	ReasonEventHubFailed      = "EventHubFailed"
	ReasonStorageNotFound     = "StorageNotFound"
	ReasonStorageFailed       = "StorageFailed"
	ReasonCredentialsNotFound = "CredentialsNotFound"
	ReasonCredentialsMismatch = "CredentialsWrongKind"
	ReasonSecretNotFound      = "SecretNotFound"
	ReasonSecretKeyNotFound   = "SecretKeyNotFound"
	ReasonInvalidSpec         = "InvalidSpec"
)

// Problem is one reason a resource cannot work. Message names the field and
// the fix, and never a secret value.
type Problem struct {
	Reason  string
	Message string
}

func (p Problem) String() string { return p.Message }

// Listers reads the referenced objects from informer caches.
type Listers struct {
	EventHubs   listers.EventHubLister
	Storages    listers.StorageLister
	Credentials listers.CredentialsLister
	// Secrets hold key names only: the controller's informer strips values.
	Secrets corelisters.SecretLister
}

// Resolved is what a Backup or Restore references, as found.
type Resolved struct {
	EventHub          *v1alpha.EventHub
	Storage           *v1alpha.Storage
	SourceCredentials *v1alpha.Credentials
	SinkCredentials   *v1alpha.Credentials
	// Secrets are the Secrets the Credentials reference, by name.
	Secrets map[string]*corev1.Secret
	// Problems say why it cannot work, in the order of the spec's fields.
	Problems []Problem
}

// Backup resolves a Backup's references: source EventHub, sink Storage, and
// the Credentials and Secrets for each.
func (l Listers) Backup(b *v1alpha.Backup) (Resolved, error) {
	r := Resolved{Secrets: map[string]*corev1.Secret{}}
	var err error
	if r.EventHub, err = l.eventHub(&r, b.Namespace, "spec.source", b.Spec.Source); err != nil {
		return r, err
	}
	if r.Storage, err = l.storage(&r, b.Namespace, "spec.sink", b.Spec.Sink); err != nil {
		return r, err
	}
	if r.SourceCredentials, err = l.credentials(&r, b.Namespace, "spec.sourceCredentialsFrom", b.Spec.SourceCredentialsFrom, kafkaSide); err != nil {
		return r, err
	}
	if r.SinkCredentials, err = l.credentials(&r, b.Namespace, "spec.sinkCredentialsFrom", b.Spec.SinkCredentialsFrom, storageSide); err != nil {
		return r, err
	}
	if r.SinkCredentials != nil && r.Storage != nil && r.Storage.Spec.Volume != nil {
		r.problem(ReasonCredentialsMismatch, "spec.sinkCredentialsFrom: Storage %q is a volume, which takes no credentials; remove sinkCredentialsFrom", r.Storage.Name)
	}
	return r, nil
}

func (r *Resolved) problem(reason, format string, args ...any) {
	r.Problems = append(r.Problems, Problem{Reason: reason, Message: fmt.Sprintf(format, args...)})
}

func (l Listers) eventHub(r *Resolved, ns, path, name string) (*v1alpha.EventHub, error) {
	eh, err := l.EventHubs.EventHubs(ns).Get(name)
	switch {
	case apierrors.IsNotFound(err):
		r.problem(ReasonEventHubNotFound, "%s: EventHub %q not found in namespace %q; create it or correct the name", path, name, ns)
		return nil, nil
	case err != nil:
		return nil, err
	}
	if errs := EventHubProblems(eh); len(errs) > 0 {
		r.problem(ReasonEventHubFailed, "%s: EventHub %q cannot be used: %s", path, name, errs[0])
	}
	return eh, nil
}

func (l Listers) storage(r *Resolved, ns, path, name string) (*v1alpha.Storage, error) {
	s, err := l.Storages.Storages(ns).Get(name)
	switch {
	case apierrors.IsNotFound(err):
		r.problem(ReasonStorageNotFound, "%s: Storage %q not found in namespace %q; create it or correct the name", path, name, ns)
		return nil, nil
	case err != nil:
		return nil, err
	}
	if s.Status.Phase == v1alpha.PhaseFailed {
		r.problem(ReasonStorageFailed, "%s: Storage %q is Failed: %s", path, name, s.Status.Message)
	}
	return s, nil
}

// side is where Credentials are used: they must be of a kind that works there.
type side int

const (
	kafkaSide side = iota
	storageSide
)

func (l Listers) credentials(r *Resolved, ns, path string, from *v1alpha.CredentialsFrom, where side) (*v1alpha.Credentials, error) {
	if from == nil {
		return nil, nil
	}
	name := from.CredentialsRef.Name
	path += ".credentialsRef.name"
	c, err := l.Credentials.Credentials(ns).Get(name)
	switch {
	case apierrors.IsNotFound(err):
		r.problem(ReasonCredentialsNotFound, "%s: Credentials %q not found in namespace %q; create them or correct the name", path, name, ns)
		return nil, nil
	case err != nil:
		return nil, err
	}
	switch kind := CredentialsKind(c); {
	case where == kafkaSide && kind == "gcp":
		r.problem(ReasonCredentialsMismatch, "%s: Credentials %q are gcp credentials, which cannot authenticate to Kafka; reference sasl or mTls Credentials", path, name)
	case where == storageSide && kind != "gcp":
		r.problem(ReasonCredentialsMismatch, "%s: Credentials %q are %s credentials, which cannot authenticate to a Storage; reference gcp Credentials", path, name, kind)
	}
	for _, ref := range SecretRefs(c) {
		secret, err := l.Secrets.Secrets(ns).Get(ref.Ref.Name)
		switch {
		case apierrors.IsNotFound(err):
			r.problem(ReasonSecretNotFound, "%s: Credentials %q: %s: Secret %q not found in namespace %q; create it or correct the reference",
				path, name, ref.Field, ref.Ref.Name, ns)
			continue
		case err != nil:
			return nil, err
		}
		r.Secrets[secret.Name] = secret
		if _, ok := secret.Data[ref.Ref.Key]; !ok {
			r.problem(ReasonSecretKeyNotFound, "%s: Credentials %q: %s: Secret %q has no key %q; add the key or correct the reference",
				path, name, ref.Field, ref.Ref.Name, ref.Ref.Key)
		}
	}
	return c, nil
}

// CredentialsKind is the kind of Credentials set: sasl, mTls or gcp.
func CredentialsKind(c *v1alpha.Credentials) string {
	switch {
	case c.Spec.SASL != nil:
		return "sasl"
	case c.Spec.MTLS != nil:
		return "mTls"
	case c.Spec.GCP != nil:
		return "gcp"
	}
	return "empty"
}

// SecretRef is one Secret key that Credentials read, with its field path.
type SecretRef struct {
	Field string
	Ref   v1alpha.SecretKeySelector
}

// SecretRefs lists the Secret keys Credentials read, in field order.
func SecretRefs(c *v1alpha.Credentials) []SecretRef {
	var refs []SecretRef
	add := func(field string, src *v1alpha.SecretValueSource) {
		if src != nil {
			refs = append(refs, SecretRef{Field: field + ".secretKeyRef", Ref: src.SecretKeyRef})
		}
	}
	if s := c.Spec.SASL; s != nil {
		add("spec.sasl.usernameFrom", &s.UsernameFrom)
		add("spec.sasl.passwordFrom", &s.PasswordFrom)
		if s.SSLConf != nil {
			add("spec.sasl.sslConf.caCertificatePemFrom", s.SSLConf.CACertificatePEMFrom)
		}
	}
	if m := c.Spec.MTLS; m != nil {
		add("spec.mTls.certificatePemFrom", &m.CertificatePEMFrom)
		add("spec.mTls.privateKeyPemFrom", &m.PrivateKeyPEMFrom)
		add("spec.mTls.caCertificatePemFrom", m.CACertificatePEMFrom)
	}
	if g := c.Spec.GCP; g != nil {
		add("spec.gcp.serviceAccountJsonFrom", &g.ServiceAccountJSONFrom)
	}
	return refs
}

// SecretNames lists the names of the Secrets Credentials read, sorted, once each.
func SecretNames(c *v1alpha.Credentials) []string {
	seen := map[string]bool{}
	var names []string
	for _, ref := range SecretRefs(c) {
		if !seen[ref.Ref.Name] {
			seen[ref.Ref.Name] = true
			names = append(names, ref.Ref.Name)
		}
	}
	sort.Strings(names)
	return names
}

// Restore resolves a Restore's references: source Storage, sink EventHub, and
// the Credentials and Secrets for each.
func (l Listers) Restore(rs *v1alpha.Restore) (Resolved, error) {
	r := Resolved{Secrets: map[string]*corev1.Secret{}}
	var err error
	if r.Storage, err = l.storage(&r, rs.Namespace, "spec.source", rs.Spec.Source); err != nil {
		return r, err
	}
	if r.EventHub, err = l.eventHub(&r, rs.Namespace, "spec.sink", rs.Spec.Sink); err != nil {
		return r, err
	}
	if r.SourceCredentials, err = l.credentials(&r, rs.Namespace, "spec.sourceCredentialsFrom", rs.Spec.SourceCredentialsFrom, storageSide); err != nil {
		return r, err
	}
	if r.SinkCredentials, err = l.credentials(&r, rs.Namespace, "spec.sinkCredentialsFrom", rs.Spec.SinkCredentialsFrom, kafkaSide); err != nil {
		return r, err
	}
	return r, nil
}
