package v1alpha

import "strings"

// Phase is the machine-readable state of a resource, for scripts and
// `kubectl wait --for=jsonpath='{.status.phase}'=Streaming`.
type Phase string

// Phases of the resources. Which kind uses which is documented on its status.
const (
	PhaseDraft        Phase = "Draft"
	PhaseReady        Phase = "Ready"
	PhaseStreaming    Phase = "Streaming"
	PhasePaused       Phase = "Paused"
	PhaseFailed       Phase = "Failed"
	PhaseInvalid      Phase = "Invalid"
	PhaseInitializing Phase = "Initializing"
	PhaseRestoring    Phase = "Restoring"
	PhaseDone         Phase = "Done"
)

// LocalObjectReference names another object in the same namespace.
type LocalObjectReference struct {
	// name of the object, in the same namespace as the referring resource.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// CredentialsFrom says which Credentials resource to authenticate with.
type CredentialsFrom struct {
	// credentialsRef names a Credentials resource in the same namespace.
	// +required
	CredentialsRef LocalObjectReference `json:"credentialsRef"`
}

// SecretKeySelector selects one key of a Secret in the same namespace.
type SecretKeySelector struct {
	// name of the Secret, in the same namespace as the Credentials.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// key within the Secret's data whose value is used.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	Key string `json:"key"`
}

// SecretValueSource takes a secret value from a Secret at run time, so that it
// never appears in a resource, a command line or a log.
type SecretValueSource struct {
	// secretKeyRef selects the Secret and key holding the value.
	// +required
	SecretKeyRef SecretKeySelector `json:"secretKeyRef"`
}

// MaxMessage bounds a status message or condition message Armory writes:
// far below the API server's 32 KiB limit on a condition message, which
// would refuse the whole status write.
const MaxMessage = 4096

// TruncateMessage cuts a message longer than MaxMessage (at a character
// boundary) and marks the cut with "…".
func TruncateMessage(m string) string {
	if len(m) <= MaxMessage {
		return m
	}
	return strings.ToValidUTF8(m[:MaxMessage], "") + "…"
}
