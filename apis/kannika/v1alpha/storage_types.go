package v1alpha

import (
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Storage is where backed-up data lives: a GCS bucket or a volume.
//
// +genclient
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=armory
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.message`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Location",type=string,JSONPath=`.status.location`
type Storage struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec says where data is stored.
	// +required
	Spec StorageSpec `json:"spec"`
	// status is written by the controller.
	// +optional
	Status StorageStatus `json:"status,omitempty"`
}

// StorageSpec sets exactly one kind of storage. The kind cannot change: the
// backups a Storage holds would be left behind, and its Backups would start
// afresh in an empty place without a word.
//
// +kubebuilder:validation:XValidation:rule="has(self.gcsBucket) != has(self.volume)",message="exactly one of gcsBucket or volume must be set"
// +kubebuilder:validation:XValidation:rule="has(self.volume) == has(oldSelf.volume)",message="a Storage cannot change between volume and gcsBucket: the backups it holds would be left behind; create a new Storage and point the Backups' spec.sink at it"
type StorageSpec struct {
	// gcsBucket stores data in a Google Cloud Storage bucket.
	// +optional
	GCSBucket *GCSBucket `json:"gcsBucket,omitempty"`
	// volume stores data on a PersistentVolumeClaim that the operator creates
	// and mounts into the workers that use this Storage.
	// +optional
	Volume *VolumeStorage `json:"volume,omitempty"`
}

// GCSBucket is a Google Cloud Storage bucket and an optional path in it.
type GCSBucket struct {
	// bucket is the name of the GCS bucket.
	// +required
	// +kubebuilder:validation:MinLength=3
	// +kubebuilder:validation:MaxLength=222
	// +kubebuilder:validation:Pattern=`^[a-z0-9][a-z0-9._-]*[a-z0-9]$`
	// +kubebuilder:validation:XValidation:rule="!self.startsWith('goog')",message="GCS refuses bucket names that start with \"goog\": choose another name"
	// +kubebuilder:validation:XValidation:rule="!self.contains('google') && !self.contains('g00gle')",message="GCS refuses bucket names that contain \"google\" or a misspelling of it: choose another name"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^[0-9]{1,3}([.][0-9]{1,3}){3}$')",message="GCS refuses bucket names in IP-address form: choose another name"
	// +kubebuilder:validation:XValidation:rule="!self.contains('..') && !self.contains('.-') && !self.contains('-.')",message="each dot-separated part of a bucket name must start and end with a letter or digit (no \"..\", \".-\" or \"-.\")"
	// +kubebuilder:validation:XValidation:rule="self.contains('.') || size(self) <= 63",message="a bucket name without dots has at most 63 characters (with dots, 222, and 63 per part)"
	// +kubebuilder:validation:XValidation:rule="self.split('.').all(p, size(p) <= 63)",message="each dot-separated part of a bucket name has at most 63 characters"
	Bucket string `json:"bucket"`
	// prefix puts every object under this path in the bucket.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:XValidation:rule="!self.startsWith('/')",message="prefix must not start with '/': write e.g. \"prod\" or \"team-a/prod\""
	// +kubebuilder:validation:XValidation:rule="!self.matches('(^|/)[.][.]?(/|$)')",message="prefix must not have a \".\" or \"..\" part: objects would land outside it; write e.g. \"team-a/prod\""
	Prefix string `json:"prefix,omitempty"`
	// endpoint is a GCS-compatible endpoint, e.g. an emulator for a local
	// setup. Default is Google's.
	// +optional
	// +kubebuilder:validation:Pattern=`^https?://[^/?#\s]+(/\S*)?$`
	Endpoint string `json:"endpoint,omitempty"`
}

// VolumeStorage is a PersistentVolumeClaim created by the operator.
//
// +kubebuilder:validation:XValidation:rule="has(self.storageClass) == has(oldSelf.storageClass)",message="storageClass cannot be added or removed once the Storage exists; create a new Storage instead"
type VolumeStorage struct {
	// capacity is the size of the volume, e.g. 10Gi. It can grow (if the
	// storage class allows expansion), never shrink.
	// +required
	// +kubebuilder:validation:XValidation:rule="quantity(string(self)).isGreaterThan(quantity('0'))",message="capacity must be greater than 0, e.g. 10Gi"
	// +kubebuilder:validation:XValidation:rule="quantity(string(self)).compareTo(quantity(string(oldSelf))) >= 0",message="capacity cannot shrink (a PersistentVolumeClaim cannot be made smaller): keep it, or create a new Storage"
	Capacity resource.Quantity `json:"capacity"`
	// storageClass of the PersistentVolumeClaim. Optional; cannot be changed
	// once set.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="storageClass cannot be changed once set; create a new Storage instead"
	StorageClass *string `json:"storageClass,omitempty"`
}

// StorageStatus is the observed state of a Storage.
type StorageStatus struct {
	// phase is Ready or Failed.
	// +optional
	Phase Phase `json:"phase,omitempty"`
	// message is the human-readable state shown in the STATUS column.
	// +optional
	Message string `json:"message,omitempty"`
	// observedGeneration is the generation this status was computed from.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// conditions are the latest observations of the Storage's state.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// location is where data is stored: gs://bucket/prefix, or the
	// PersistentVolumeClaim.
	// +optional
	Location string `json:"location,omitempty"`
}

// StorageList is a list of Storages.
//
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
type StorageList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Storage `json:"items"`
}
