// Package backupspec holds what the controller and the backup worker must
// agree on about a Backup's settings: how a stream's settings fold the
// Backup's in, and what the schema cannot check. One place, so the
// controller says Failed for exactly what the worker would refuse.
package backupspec

import (
	"fmt"

	"github.com/kannika/armory/apis/kannika/v1alpha"
)

// Stream folds the Backup's compression and segment rollover settings into a
// stream's own (a stream's setting wins).
func Stream(b *v1alpha.Backup, s v1alpha.BackupStream) v1alpha.BackupStream {
	s.Enabled = nil
	if s.Compression == nil {
		s.Compression = b.Spec.Compression
	}
	triggers := v1alpha.SegmentRolloverTriggers{}
	if t := b.Spec.SegmentRolloverTriggers; t != nil {
		triggers = *t.DeepCopy()
	}
	if t := s.SegmentRolloverTriggers; t != nil {
		if t.Size != nil {
			triggers.Size = t.Size
		}
		if t.TimeoutSeconds != nil {
			triggers.TimeoutSeconds = t.TimeoutSeconds
		}
	}
	s.SegmentRolloverTriggers = &triggers
	return s
}

// SizeProblem is what the worker says of a rollover size it refuses
// (Problems says the same, with the field's path, written out so that the
// troubleshooting page's test finds it).
const SizeProblem = "segmentRolloverTriggers.size must be greater than 0, e.g. 64Mi"

// Problems lists the settings of b that cannot work and that the schema
// cannot refuse (a CEL rule on a quantity costs more than the API server
// allows), each naming its field. Disabled streams count too: enabling
// one must not be what reveals its mistake.
func Problems(b *v1alpha.Backup) []string {
	var out []string
	if t := b.Spec.SegmentRolloverTriggers; t != nil && t.Size != nil && t.Size.Sign() <= 0 {
		out = append(out, fmt.Sprintf("spec.segmentRolloverTriggers.size must be greater than 0, e.g. 64Mi (it is %s)", t.Size.String()))
	}
	for i, s := range b.Spec.Streams {
		if t := s.SegmentRolloverTriggers; t != nil && t.Size != nil && t.Size.Sign() <= 0 {
			out = append(out, fmt.Sprintf("spec.streams[%d] (topic %q): segmentRolloverTriggers.size must be greater than 0, e.g. 64Mi (it is %s)", i, s.Topic, t.Size.String()))
		}
	}
	return out
}
