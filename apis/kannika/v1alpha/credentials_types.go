package v1alpha

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Credentials say how to authenticate to an EventHub or a Storage. Every
// secret value comes from a key of a Kubernetes Secret, read at run time.
//
// +genclient
// +genclient:noStatus
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=creds,categories=armory
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Credentials struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec sets exactly one kind of credentials.
	// +required
	Spec CredentialsSpec `json:"spec"`
}

// CredentialsSpec sets exactly one kind of credentials.
//
// +kubebuilder:validation:XValidation:rule="[has(self.sasl), has(self.mTls), has(self.gcp)].filter(x, x).size() == 1",message="exactly one of sasl, mTls or gcp must be set"
type CredentialsSpec struct {
	// sasl authenticates to Kafka with SASL PLAIN or SCRAM, optionally over TLS.
	// +optional
	SASL *SASLCredentials `json:"sasl,omitempty"`
	// mTls authenticates to Kafka with a TLS client certificate.
	// +optional
	MTLS *MTLSCredentials `json:"mTls,omitempty"`
	// gcp authenticates to Google Cloud Storage with a service-account key.
	// +optional
	GCP *GCPCredentials `json:"gcp,omitempty"`
}

// SASLMechanism is a SASL mechanism Kafka supports.
// +kubebuilder:validation:Enum=PLAIN;SCRAM-SHA-256;SCRAM-SHA-512
type SASLMechanism string

// SASL mechanisms.
const (
	SASLPlain       SASLMechanism = "PLAIN"
	SASLScramSHA256 SASLMechanism = "SCRAM-SHA-256"
	SASLScramSHA512 SASLMechanism = "SCRAM-SHA-512"
)

// SASLCredentials are a SASL user name and password.
type SASLCredentials struct {
	// mechanism is the SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
	// +required
	Mechanism SASLMechanism `json:"mechanism"`
	// usernameFrom is the Secret key holding the user name.
	// +required
	UsernameFrom SecretValueSource `json:"usernameFrom"`
	// passwordFrom is the Secret key holding the password.
	// +required
	PasswordFrom SecretValueSource `json:"passwordFrom"`
	// sslConf runs SASL over TLS.
	// +optional
	SSLConf *SSLConf `json:"sslConf,omitempty"`
}

// SSLConf turns on TLS to the brokers.
type SSLConf struct {
	// enabled turns TLS on.
	// +optional
	Enabled bool `json:"enabled,omitempty"`
	// caCertificatePemFrom is the Secret key holding the PEM CA certificate
	// that signs the brokers' certificates. Without it the system's roots
	// are used.
	// +optional
	CACertificatePEMFrom *SecretValueSource `json:"caCertificatePemFrom,omitempty"`
}

// MTLSCredentials are a TLS client certificate and key.
type MTLSCredentials struct {
	// certificatePemFrom is the Secret key holding the PEM client certificate.
	// +required
	CertificatePEMFrom SecretValueSource `json:"certificatePemFrom"`
	// privateKeyPemFrom is the Secret key holding the PEM private key.
	// +required
	PrivateKeyPEMFrom SecretValueSource `json:"privateKeyPemFrom"`
	// caCertificatePemFrom is the Secret key holding the PEM CA certificate
	// that signs the brokers' certificates. Without it the system's roots
	// are used.
	// +optional
	CACertificatePEMFrom *SecretValueSource `json:"caCertificatePemFrom,omitempty"`
}

// GCPCredentials are a Google Cloud service-account key.
type GCPCredentials struct {
	// serviceAccountJsonFrom is the Secret key holding the service account's
	// JSON key.
	// +required
	ServiceAccountJSONFrom SecretValueSource `json:"serviceAccountJsonFrom"`
}

// CredentialsList is a list of Credentials.
//
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
type CredentialsList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Credentials `json:"items"`
}
