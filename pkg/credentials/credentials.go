// Package credentials turns Credentials and the Secrets they name into
// Kafka and storage client settings. It is the only reader of secret values:
// it never logs them, and its errors name references, never values.
package credentials

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/kannika/armory/apis/kannika/v1alpha"
	"github.com/kannika/armory/generated/clientset/versioned"
	"github.com/kannika/armory/pkg/kafka"
	"github.com/kannika/armory/pkg/secretlog"
	"github.com/kannika/armory/pkg/storage"
	"github.com/kannika/armory/pkg/storage/gcs"
	"github.com/kannika/armory/pkg/storage/volume"
)

// Reader reads Credentials and Secrets from the API server when asked, so a
// rotated Secret is used on the next connection.
type Reader struct {
	Kube      kubernetes.Interface
	Armory    versioned.Interface
	Namespace string
}

// Get reads the Credentials named by from; nil from means none.
func (r Reader) Get(ctx context.Context, field string, from *v1alpha.CredentialsFrom) (*v1alpha.Credentials, error) {
	if from == nil {
		return nil, nil
	}
	c, err := r.Armory.KannikaV1alpha().Credentials(r.Namespace).Get(ctx, from.CredentialsRef.Name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("%s: read Credentials %q: %w", field, from.CredentialsRef.Name, err)
	}
	return c, nil
}

// value reads one Secret key.
func (r Reader) value(ctx context.Context, c *v1alpha.Credentials, field string, src v1alpha.SecretValueSource) ([]byte, error) {
	ref := src.SecretKeyRef
	// client-go logs request and response bodies at -v=8 and above through
	// the request context's logger; secretlog caps it, so the value reaches
	// no log at any verbosity.
	s, err := r.Kube.CoreV1().Secrets(r.Namespace).Get(secretlog.Context(ctx), ref.Name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("Credentials %q: %s: read Secret %q: %w", c.Name, field, ref.Name, err)
	}
	v, ok := s.Data[ref.Key]
	if !ok {
		return nil, fmt.Errorf("Credentials %q: %s: Secret %q has no key %q", c.Name, field, ref.Name, ref.Key)
	}
	return v, nil
}

// KafkaAuth builds Kafka authentication from sasl or mTls Credentials; nil
// Credentials mean none.
func (r Reader) KafkaAuth(ctx context.Context, c *v1alpha.Credentials) (kafka.Auth, error) {
	if c == nil {
		return kafka.Auth{}, nil
	}
	switch {
	case c.Spec.SASL != nil:
		s := c.Spec.SASL
		user, err := r.value(ctx, c, "spec.sasl.usernameFrom", s.UsernameFrom)
		if err != nil {
			return kafka.Auth{}, err
		}
		password, err := r.value(ctx, c, "spec.sasl.passwordFrom", s.PasswordFrom)
		if err != nil {
			return kafka.Auth{}, err
		}
		auth := kafka.Auth{SASL: &kafka.SASL{Mechanism: string(s.Mechanism), User: string(user), Password: string(password)}}
		if s.SSLConf != nil && s.SSLConf.Enabled {
			if auth.TLS, err = r.tlsConfig(ctx, c, "spec.sasl.sslConf.caCertificatePemFrom", s.SSLConf.CACertificatePEMFrom); err != nil {
				return kafka.Auth{}, err
			}
		}
		return auth, nil
	case c.Spec.MTLS != nil:
		m := c.Spec.MTLS
		cfg, err := r.tlsConfig(ctx, c, "spec.mTls.caCertificatePemFrom", m.CACertificatePEMFrom)
		if err != nil {
			return kafka.Auth{}, err
		}
		certPEM, err := r.value(ctx, c, "spec.mTls.certificatePemFrom", m.CertificatePEMFrom)
		if err != nil {
			return kafka.Auth{}, err
		}
		keyPEM, err := r.value(ctx, c, "spec.mTls.privateKeyPemFrom", m.PrivateKeyPEMFrom)
		if err != nil {
			return kafka.Auth{}, err
		}
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			// tls's errors do not contain key material.
			return kafka.Auth{}, fmt.Errorf("Credentials %q: spec.mTls: the certificate and private key do not form a pair: %w", c.Name, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
		return kafka.Auth{TLS: cfg}, nil
	}
	return kafka.Auth{}, fmt.Errorf("Credentials %q are not sasl or mTls credentials, which Kafka needs", c.Name)
}

func (r Reader) tlsConfig(ctx context.Context, c *v1alpha.Credentials, field string, ca *v1alpha.SecretValueSource) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if ca == nil {
		return cfg, nil
	}
	pem, err := r.value(ctx, c, field, *ca)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("Credentials %q: %s: no PEM certificate found", c.Name, field)
	}
	cfg.RootCAs = pool
	return cfg, nil
}

// GCSKey returns the service-account JSON of gcp Credentials; nil
// Credentials mean the ambient credentials.
func (r Reader) GCSKey(ctx context.Context, c *v1alpha.Credentials) ([]byte, error) {
	if c == nil {
		return nil, nil
	}
	if c.Spec.GCP == nil {
		return nil, fmt.Errorf("Credentials %q are not gcp credentials, which a GCS Storage needs", c.Name)
	}
	return r.value(ctx, c, "spec.gcp.serviceAccountJsonFrom", c.Spec.GCP.ServiceAccountJSONFrom)
}

// OpenStorage opens the bucket a Storage names: a GCS bucket with the gcp
// Credentials c (nil: the pod's ambient credentials), whose reference is at
// field, or a volume mounted at volumePath.
func (r Reader) OpenStorage(ctx context.Context, st *v1alpha.Storage, field string, c *v1alpha.Credentials, volumePath string) (storage.Bucket, error) {
	switch {
	case st.Spec.GCSBucket != nil:
		key, err := r.GCSKey(ctx, c)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", field, err)
		}
		g := st.Spec.GCSBucket
		return gcs.New(ctx, gcs.Config{Bucket: g.Bucket, Prefix: g.Prefix, Endpoint: g.Endpoint, ServiceAccountJSON: key})
	case st.Spec.Volume != nil:
		b, err := volume.New(volumePath)
		if err != nil {
			return nil, fmt.Errorf("volume Storage %q at %s: %w", st.Name, volumePath, err)
		}
		return b, nil
	}
	return nil, fmt.Errorf("Storage %q sets neither gcsBucket nor volume", st.Name)
}
