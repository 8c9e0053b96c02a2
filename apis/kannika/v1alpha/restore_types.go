package v1alpha

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Restore writes backed-up records from a Storage back into topics of an
// EventHub. The operator runs it as a Job named after the Restore.
//
// +genclient
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=armory
// +kubebuilder:validation:XValidation:rule="size(self.metadata.name) <= 63",message="metadata.name must be at most 63 characters: it names the worker's Job and its labels"
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.message`
// +kubebuilder:printcolumn:name="Progress",type=string,JSONPath=`.status.progress`,priority=1
// +kubebuilder:printcolumn:name="Records",type=string,JSONPath=`.status.records`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Restore struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec says what to restore, from where, to where.
	// +required
	Spec RestoreSpec `json:"spec"`
	// status is written by the controller and the restore worker.
	// +optional
	Status RestoreStatus `json:"status,omitempty"`
}

// RestoreSpec says what to restore, from where, to where.
type RestoreSpec struct {
	// source is the name of the Storage to read.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	Source string `json:"source"`
	// sink is the name of the EventHub to write to.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	Sink string `json:"sink"`
	// enabled starts the Restore. A Restore starts only when enabled; setting
	// it to false on a running Restore stops it, and true again resumes it.
	// +optional
	// +kubebuilder:default=false
	Enabled *bool `json:"enabled,omitempty"`
	// sourceCredentialsFrom names the Credentials (gcp) used to read the
	// Storage. Without it a GCS Storage uses the pod's ambient credentials.
	// +optional
	SourceCredentialsFrom *CredentialsFrom `json:"sourceCredentialsFrom,omitempty"`
	// sinkCredentialsFrom names the Credentials (sasl or mTls) used to
	// connect to the EventHub.
	// +optional
	SinkCredentialsFrom *CredentialsFrom `json:"sinkCredentialsFrom,omitempty"`
	// config says which topics, partitions and records to restore.
	// +optional
	Config RestoreConfig `json:"config,omitempty"`
}

// RestoreConfig says which topics, partitions and records to restore.
type RestoreConfig struct {
	// topics maps backed-up topics to the topics they are written to.
	// +optional
	// +listType=map
	// +listMapKey=source
	// +kubebuilder:validation:MaxItems=100
	// +kubebuilder:validation:XValidation:rule="self.all(t, self.exists_one(u, u.target == t.target))",message="each target topic may appear only once: two sources cannot be restored into one topic"
	Topics []RestoreTopic `json:"topics,omitempty"`
	// filters restore only the records that pass them.
	// +optional
	Filters *RestoreFilters `json:"filters,omitempty"`
	// legacyOffsetHeader, when set, adds to each restored record a header of
	// this name holding the record's original offset.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=255
	LegacyOffsetHeader string `json:"legacyOffsetHeader,omitempty"`
	// createTopics creates missing target topics with the backed-up
	// partition count.
	// +optional
	CreateTopics bool `json:"createTopics,omitempty"`
}

// RestoreTopic restores one backed-up topic into a target topic.
type RestoreTopic struct {
	// source is the topic name in the backup.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=249
	// +kubebuilder:validation:Pattern=`^[a-zA-Z0-9._-]+$`
	Source string `json:"source"`
	// target is the topic name to write to.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=249
	// +kubebuilder:validation:Pattern=`^[a-zA-Z0-9._-]+$`
	// +kubebuilder:validation:XValidation:rule="self != '.' && self != '..'",message="a topic cannot be named '.' or '..'"
	// +kubebuilder:validation:XValidation:rule="!self.startsWith('__')",message="names starting with '__' are Kafka's internal topics (__consumer_offsets, __transaction_state): restore into a topic of your own"
	Target string `json:"target"`
	// partitions restores only these partitions, within these offsets.
	// Without it every partition is restored whole.
	// +optional
	// +listType=map
	// +listMapKey=number
	// +kubebuilder:validation:MaxItems=1000
	Partitions []RestorePartition `json:"partitions,omitempty"`
	// disablePreflightChecks lets the Restore write into a target topic that
	// is not empty.
	// +optional
	DisablePreflightChecks bool `json:"disablePreflightChecks,omitempty"`
}

// RestorePartition restores one partition, optionally within an offset window.
//
// +kubebuilder:validation:XValidation:rule="!has(self.restoreFromOffset) || !has(self.restoreUntilOffset) || self.restoreFromOffset < self.restoreUntilOffset",message="restoreFromOffset must be less than restoreUntilOffset (from is inclusive, until exclusive)"
type RestorePartition struct {
	// number is the partition number.
	// +required
	// +kubebuilder:validation:Minimum=0
	Number int32 `json:"number"`
	// restoreFromOffset is the first offset restored (inclusive).
	// +optional
	// +kubebuilder:validation:Minimum=0
	RestoreFromOffset *int64 `json:"restoreFromOffset,omitempty"`
	// restoreUntilOffset is the offset where the restore stops (exclusive).
	// +optional
	// +kubebuilder:validation:Minimum=0
	RestoreUntilOffset *int64 `json:"restoreUntilOffset,omitempty"`
}

// RestoreFilters restore only the records that pass them.
type RestoreFilters struct {
	// time restores only records whose timestamp is in a window.
	// +optional
	Time *TimeFilter `json:"time,omitempty"`
}

// TimeFilter restores only records whose timestamp is in a window.
type TimeFilter struct {
	// absolute is a window between two instants.
	// +optional
	Absolute *AbsoluteTimeWindow `json:"absolute,omitempty"`
}

// AbsoluteTimeWindow is a window between two instants.
//
// +kubebuilder:validation:XValidation:rule="!has(self.fromDateTime) || !has(self.toDateTime) || timestamp(self.fromDateTime) < timestamp(self.toDateTime)",message="fromDateTime must be before toDateTime (from is inclusive, to exclusive)"
type AbsoluteTimeWindow struct {
	// fromDateTime is the first instant restored (inclusive), RFC 3339.
	// +optional
	FromDateTime *metav1.Time `json:"fromDateTime,omitempty"`
	// toDateTime is the instant where the window ends (exclusive), RFC 3339.
	// +optional
	ToDateTime *metav1.Time `json:"toDateTime,omitempty"`
}

// RestoreStatus is the observed state of a Restore.
type RestoreStatus struct {
	// phase is one of Draft, Ready, Invalid, Initializing, Restoring, Done,
	// Failed.
	// +optional
	Phase Phase `json:"phase,omitempty"`
	// message is the human-readable state shown in the STATUS column.
	// +optional
	Message string `json:"message,omitempty"`
	// observedGeneration is the generation this status was computed from.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// conditions are the latest observations of the Restore's state.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// startTime is when the Restore began writing.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`
	// completionTime is when every selected record was written.
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`
	// progress is the share of the selected records restored and
	// committed, e.g. "41%". Written by the restore worker.
	// +optional
	Progress string `json:"progress,omitempty"`
	// records is "restored/total" over every topic, e.g. "41000/100000".
	// +optional
	Records string `json:"records,omitempty"`
	// topics is the progress of each restored topic.
	// +optional
	// +listType=map
	// +listMapKey=source
	// +kubebuilder:validation:MaxItems=100
	Topics []RestoreTopicStatus `json:"topics,omitempty"`
}

// RestoreTopicStatus is the progress of one restored topic.
type RestoreTopicStatus struct {
	// source is the topic name in the backup.
	// +required
	Source string `json:"source"`
	// target is the topic written to.
	// +optional
	Target string `json:"target,omitempty"`
	// recordsRestored is the number of records written and acknowledged.
	// +optional
	RecordsRestored int64 `json:"recordsRestored,omitempty"`
	// recordsTotal is the number of records selected for restore.
	// +optional
	RecordsTotal int64 `json:"recordsTotal,omitempty"`
	// bytesRestored is the number of record bytes written and acknowledged.
	// +optional
	BytesRestored int64 `json:"bytesRestored,omitempty"`
	// bytesTotal is the number of record bytes selected for restore.
	// +optional
	BytesTotal int64 `json:"bytesTotal,omitempty"`
	// gaps are ranges of positions inside the selected window that the
	// backup does not hold (Kafka's retention removed them before the
	// backup reached them). The first 20 are listed.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=20
	Gaps []RestoreGap `json:"gaps,omitempty"`
	// gapPositions counts the positions of every gap in the window.
	// +optional
	GapPositions int64 `json:"gapPositions,omitempty"`
}

// RestoreGap is a range of positions of one partition that the backup does
// not hold.
type RestoreGap struct {
	// partition is the partition number.
	Partition int32 `json:"partition"`
	// start is the first missing position (inclusive).
	Start int64 `json:"start"`
	// end is the position after the last missing one (exclusive).
	End int64 `json:"end"`
}

// RestoreList is a list of Restores.
//
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
type RestoreList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Restore `json:"items"`
}

// Condition types of a Restore. The controller sets Valid and WorkerRunning;
// the restore worker sets the others, under its own field manager, so the
// two never overwrite each other.
const (
	// RestoreValid: the Storage, EventHub and Credentials can be used.
	RestoreValid = "Valid"
	// RestoreWorkerRunning: a restore worker holds the Restore's Lease.
	RestoreWorkerRunning = "WorkerRunning"
	// RestorePreflight: the worker's checks before the first write passed
	// (True) or not (False: the message names the topic and the fix).
	RestorePreflight = "Preflight"
	// RestoreRetrying: the worker is retrying a transient error (True, with
	// the error), or is making progress (False).
	RestoreRetrying = "Retrying"
	// RestoreComplete: every selected record was written and committed.
	RestoreComplete = "Complete"
	// RestoreFailed: the worker stopped on an error retrying cannot fix.
	RestoreFailed = "Failed"
)
