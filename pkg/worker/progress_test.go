package worker

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kannika/armory/pkg/layout"
)

// TestAStoppedWorkersStatusAgreesWithItself: once the worker stops, the
// columns (STREAMS, LAG) and the stream list say the same thing: streams
// enabled but not running, and no lag figure, since nothing measures it.
func TestAStoppedWorkersStatusAgreesWithItself(t *testing.T) {
	p := newProgress(newMetrics(prometheus.NewRegistry()))
	for _, topic := range []string{"a", "b"} {
		p.setStream(topic, StreamStreaming, "")
		pp := p.partition(topic, 0)
		pp.stored(&layout.PartitionState{Next: 10})
		pp.highWater(16)
	}
	p.disableStream("c")

	running := p.apply("x", "ns").Status
	if *running.StreamsReady != "2/2" || running.Lag == nil || *running.Lag != 12 {
		t.Fatalf("running: streams %s, lag %v; want 2/2 and 12", *running.StreamsReady, running.Lag)
	}

	p.workerStopping(time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC))
	p.setStream("a", StreamStopped, "") // what each stream does as it ends
	p.setStream("b", StreamStopped, "")
	stopped := p.apply("x", "ns").Status
	if *stopped.StreamsReady != "0/2" {
		t.Errorf("stopped: STREAMS %s, want 0/2 (two enabled streams, none running)", *stopped.StreamsReady)
	}
	if stopped.Lag != nil {
		t.Errorf("stopped: LAG %d; want none, as nothing measures it", *stopped.Lag)
	}
	for _, s := range stopped.Streams {
		switch *s.Topic {
		case "a", "b":
			if s.Lag != nil || s.Partitions[0].Lag != nil || !strings.Contains(*s.Message, "the worker stopped at 2026-12-02T10:00:00Z") {
				t.Errorf("stream %s: lag %v, partition lag %v, message %v", *s.Topic, s.Lag, s.Partitions[0].Lag, s.Message)
			}
			if *s.RecordsStored != 0 || *s.Partitions[0].NextOffset != 10 {
				t.Errorf("stream %s lost its progress: %+v", *s.Topic, s)
			}
		case "c":
			if s.Message != nil {
				t.Errorf("the disabled stream says %q", *s.Message)
			}
		}
	}
}
