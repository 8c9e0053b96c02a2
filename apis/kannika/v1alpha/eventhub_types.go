package v1alpha

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// EventHub is a Kafka cluster that Backups read from and Restores write to.
// It holds connection settings only; secrets live in Credentials.
//
// +genclient
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=armory
// +kubebuilder:printcolumn:name="Type",type=string,JSONPath=`.status.type`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.message`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Location",type=string,JSONPath=`.status.location`
type EventHub struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec holds the cluster's connection settings.
	// +required
	Spec EventHubSpec `json:"spec"`
	// status is written by the controller.
	// +optional
	Status EventHubStatus `json:"status,omitempty"`
}

// EventHubSpec describes how to reach a Kafka cluster.
type EventHubSpec struct {
	// kafka holds the Kafka client settings.
	// +required
	Kafka KafkaSettings `json:"kafka"`
}

// KafkaSettings are Kafka client properties.
type KafkaSettings struct {
	// properties uses the familiar Kafka client property names.
	// bootstrap.servers is required. The supported properties are listed in
	// Armory's documentation; an unsupported one is reported in the status,
	// never silently ignored. Authentication comes from Credentials, which
	// override anything set here.
	// +required
	// +kubebuilder:validation:XValidation:rule="'bootstrap.servers' in self && self['bootstrap.servers'] != ''",message="bootstrap.servers is required: set it to the Kafka brokers, e.g. \"kafka-0.kafka:9092,kafka-1.kafka:9092\""
	Properties map[string]string `json:"properties"`
}

// EventHubStatus is the observed state of an EventHub.
type EventHubStatus struct {
	// phase is Ready or Failed.
	// +optional
	Phase Phase `json:"phase,omitempty"`
	// message is the human-readable state shown in the STATUS column.
	// +optional
	Message string `json:"message,omitempty"`
	// observedGeneration is the generation this status was computed from.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// conditions are the latest observations of the EventHub's state.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// type is the kind of event hub: Kafka.
	// +optional
	Type string `json:"type,omitempty"`
	// location is where the cluster is reached: its bootstrap servers.
	// +optional
	Location string `json:"location,omitempty"`
}

// EventHubList is a list of EventHubs.
//
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
type EventHubList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []EventHub `json:"items"`
}
