package v1alpha

import (
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Backup backs up topics of an EventHub to a Storage, continuously. The
// operator runs it as a Deployment named after the Backup.
//
// +genclient
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=armory
// +kubebuilder:validation:XValidation:rule="size(self.metadata.name) <= 63",message="metadata.name must be at most 63 characters: it names the worker's Deployment and its labels"
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.message`
// +kubebuilder:printcolumn:name="Streams",type=string,JSONPath=`.status.streamsReady`,priority=1
// +kubebuilder:printcolumn:name="Lag",type=integer,JSONPath=`.status.lag`,priority=1
// +kubebuilder:printcolumn:name="Last Upload",type=string,format=date-time,JSONPath=`.status.lastUploadTime`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Backup struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec says what to back up, from where, to where.
	// +required
	Spec BackupSpec `json:"spec"`
	// status is written by the controller (phase, message, conditions) and
	// by the worker (streams and progress).
	// +optional
	Status BackupStatus `json:"status,omitempty"`
}

// BackupSpec says what to back up, from where, to where.
type BackupSpec struct {
	// source is the name of the EventHub (Kafka cluster) to read from.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Source string `json:"source"`
	// sink is the name of the Storage to write to.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Sink string `json:"sink"`
	// enabled runs the Backup. Set it to false to pause the Backup: its
	// Deployment is scaled to 0 and nothing is deleted. Set it to true again,
	// or remove it, to resume exactly where the Backup stopped.
	// +optional
	// +kubebuilder:default=true
	Enabled *bool `json:"enabled,omitempty"`
	// sourceCredentialsFrom names the Credentials (sasl or mTls) used to
	// connect to the EventHub.
	// +optional
	SourceCredentialsFrom *CredentialsFrom `json:"sourceCredentialsFrom,omitempty"`
	// sinkCredentialsFrom names the Credentials (gcp) used to write to the
	// Storage. Without it a GCS Storage uses the pod's ambient credentials.
	// +optional
	SinkCredentialsFrom *CredentialsFrom `json:"sinkCredentialsFrom,omitempty"`
	// compression of new segments. Changing it applies to new segments;
	// existing ones stay readable.
	// +optional
	// +kubebuilder:default={}
	Compression *Compression `json:"compression,omitempty"`
	// segmentRolloverTriggers say when a segment is closed and uploaded: at a
	// size, or a time after its first record, whichever comes first.
	// +optional
	SegmentRolloverTriggers *SegmentRolloverTriggers `json:"segmentRolloverTriggers,omitempty"`
	// streams are the topics to back up, one entry per topic.
	// +optional
	// +listType=map
	// +listMapKey=topic
	// +kubebuilder:validation:MaxItems=1000
	Streams []BackupStream `json:"streams,omitempty"`
}

// BackupStream is one topic to back up.
type BackupStream struct {
	// topic is the name of the Kafka topic to back up.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=249
	// +kubebuilder:validation:Pattern=`^[a-zA-Z0-9._-]+$`
	// +kubebuilder:validation:XValidation:rule="self != '.' && self != '..'",message="a topic cannot be named '.' or '..'"
	Topic string `json:"topic"`
	// enabled backs up this topic. Set it to false to pause this stream only;
	// a Backup whose every stream is disabled is Paused.
	// +optional
	// +kubebuilder:default=true
	Enabled *bool `json:"enabled,omitempty"`
	// compression overrides the Backup's compression for this topic.
	// +optional
	Compression *Compression `json:"compression,omitempty"`
	// segmentRolloverTriggers override the Backup's for this topic.
	// +optional
	SegmentRolloverTriggers *SegmentRolloverTriggers `json:"segmentRolloverTriggers,omitempty"`
}

// CompressionAlgorithm is how segment blocks are compressed.
// +kubebuilder:validation:Enum=none;zstd;gzip;snappy;lz4
type CompressionAlgorithm string

// Compression algorithms.
const (
	CompressionNone   CompressionAlgorithm = "none"
	CompressionZstd   CompressionAlgorithm = "zstd"
	CompressionGzip   CompressionAlgorithm = "gzip"
	CompressionSnappy CompressionAlgorithm = "snappy"
	CompressionLZ4    CompressionAlgorithm = "lz4"
)

// CompressionLevel trades compression speed against segment size.
// +kubebuilder:validation:Enum=fastest;default;better
type CompressionLevel string

// Compression levels.
const (
	CompressionFastest CompressionLevel = "fastest"
	CompressionDefault CompressionLevel = "default"
	CompressionBetter  CompressionLevel = "better"
)

// Compression selects how segments are compressed.
// +kubebuilder:validation:XValidation:rule="!has(self.level) || self.level == 'default' || !has(self.algorithm) || !(self.algorithm in ['none', 'snappy'])",message="none and snappy have no levels: leave level out, or use zstd, gzip or lz4",fieldPath=".level"
type Compression struct {
	// algorithm is one of none, zstd (default), gzip, snappy, lz4.
	// +optional
	// +kubebuilder:default=zstd
	Algorithm CompressionAlgorithm `json:"algorithm,omitempty"`
	// level is how hard zstd, gzip or lz4 compresses: fastest, default
	// (when unset) or better. A CPU-bound backup runs faster at fastest
	// for larger segments; better writes smaller segments, slower. It is
	// not stored: segments written at any level restore the same.
	// +optional
	Level CompressionLevel `json:"level,omitempty"`
}

// SegmentRolloverTriggers say when a segment is closed and uploaded.
// Data is durable once its segment is uploaded, so timeoutSeconds bounds how
// much recent data a disaster can take (the recovery point objective).
type SegmentRolloverTriggers struct {
	// size closes a segment once its records reach this many uncompressed
	// bytes, e.g. 64Mi. It must be greater than 0; the worker checks it, as
	// a CEL rule on a quantity costs more than the API server allows.
	// +optional
	Size *resource.Quantity `json:"size,omitempty"`
	// timeoutSeconds closes a segment this many seconds after its first
	// record, so a quiet topic's data still lands in storage.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=86400
	TimeoutSeconds *int32 `json:"timeoutSeconds,omitempty"`
}

// BackupStatus is the observed state of a Backup.
type BackupStatus struct {
	// phase is one of Draft, Ready, Streaming, Paused, Failed.
	// +optional
	Phase Phase `json:"phase,omitempty"`
	// message is the human-readable state shown in the STATUS column.
	// +optional
	Message string `json:"message,omitempty"`
	// observedGeneration is the generation this status was computed from.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// conditions are the latest observations of the Backup's state.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// streamsReady counts the streams backing up out of the enabled ones,
	// e.g. "2/2".
	// +optional
	StreamsReady string `json:"streamsReady,omitempty"`
	// lag is the number of records in Kafka not yet in storage, over all
	// streams.
	// +optional
	Lag *int64 `json:"lag,omitempty"`
	// lastUploadTime is when the last segment of any stream was stored.
	// +optional
	LastUploadTime *metav1.Time `json:"lastUploadTime,omitempty"`
	// streams is the progress of each topic, reported by the worker.
	// +optional
	// +listType=map
	// +listMapKey=topic
	Streams []BackupStreamStatus `json:"streams,omitempty"`
}

// BackupStreamStatus is the progress of one topic.
type BackupStreamStatus struct {
	// topic is the Kafka topic.
	// +required
	Topic string `json:"topic"`
	// state is Streaming, Stopped (disabled) or Failed.
	// +optional
	State StreamState `json:"state,omitempty"`
	// message says what is wrong with this stream, if anything, and the fix.
	// +optional
	Message string `json:"message,omitempty"`
	// recordsStored is the number of records stored since the backup began.
	// +optional
	RecordsStored int64 `json:"recordsStored,omitempty"`
	// bytesStored is the number of uncompressed record bytes stored.
	// +optional
	BytesStored int64 `json:"bytesStored,omitempty"`
	// lastUploadTime is when this topic's last segment was stored.
	// +optional
	LastUploadTime *metav1.Time `json:"lastUploadTime,omitempty"`
	// lag is the number of records in Kafka not yet in storage.
	// +optional
	Lag int64 `json:"lag,omitempty"`
	// partitions is the progress of each partition.
	// +optional
	// +listType=map
	// +listMapKey=partition
	Partitions []PartitionProgress `json:"partitions,omitempty"`
}

// PartitionProgress is the progress of one partition.
type PartitionProgress struct {
	// partition is the partition number.
	// +required
	Partition int32 `json:"partition"`
	// lastOffsetStored is the offset of the last record stored, if any.
	// +optional
	LastOffsetStored *int64 `json:"lastOffsetStored,omitempty"`
	// nextOffset is where the backup continues: the end of the last stored
	// object.
	// +optional
	NextOffset int64 `json:"nextOffset,omitempty"`
	// lag is the number of records in Kafka not yet in storage.
	// +optional
	Lag int64 `json:"lag,omitempty"`
}

// BackupList is a list of Backups.
//
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
type BackupList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Backup `json:"items"`
}

// BackupWorkerConnected is the condition the backup worker sets when it
// starts, under its own field manager: True once it reached Kafka and the
// Storage, False with what stopped it (the worker then exits, and the
// controller shows the Backup Failed with that message).
const BackupWorkerConnected = "WorkerConnected"

// StreamState is what the backup worker reports of one stream.
// +kubebuilder:validation:Enum=Streaming;Retrying;Stopped;Failed
type StreamState string

// Stream states.
const (
	// StreamStreaming: the worker backs the stream up.
	StreamStreaming StreamState = "Streaming"
	// StreamRetrying: the worker backs the stream up, but a partition's
	// read or upload failed within the last minute and is being retried
	// (storage faults, a broker gone); the message says what failed.
	StreamRetrying StreamState = "Retrying"
	// StreamStopped: the stream (or the Backup) is disabled.
	StreamStopped StreamState = "Stopped"
	// StreamFailed: the stream cannot run until a person acts (its topic
	// deleted, recreated, or owned by another Backup); the message says why.
	StreamFailed StreamState = "Failed"
)
