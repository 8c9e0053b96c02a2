package v1alpha_test

import (
	"bufio"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/kannika/armory/pkg/testenv"
)

var examplesDir = filepath.Join(testenv.RepoRoot(), "docs", "examples")

// TestExamplesMatchSpec keeps docs/examples identical to the YAML blocks of the
// product documentation, so the examples applied below are the ones users read.
func TestExamplesMatchSpec(t *testing.T) {
	specDir := filepath.Join(testenv.RepoRoot(), "..", "shared", "spec")
	specFiles, err := filepath.Glob(filepath.Join(specDir, "*.md"))
	if err != nil || len(specFiles) == 0 {
		t.Skipf("no product documentation at %s to compare docs/examples with", specDir)
	}
	var blocks []string
	for _, f := range specFiles {
		blocks = append(blocks, yamlBlocks(t, f)...)
	}
	examples := map[string]string{}
	for _, f := range exampleFiles(t) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		examples[string(b)] = filepath.Base(f)
	}
	for _, block := range blocks {
		if _, ok := examples[block]; !ok {
			t.Errorf("this YAML example of the documentation is not in docs/examples (verbatim):\n%s", block)
		}
		delete(examples, block)
	}
	for _, name := range examples {
		t.Errorf("docs/examples/%s is not an example of the documentation", name)
	}
}

// yamlBlocks returns the ```yaml fenced blocks of a Markdown file.
func yamlBlocks(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var blocks []string
	var cur *strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case cur == nil && strings.HasPrefix(line, "```yaml"):
			cur = &strings.Builder{}
		case cur != nil && strings.HasPrefix(line, "```"):
			blocks = append(blocks, cur.String())
			cur = nil
		case cur != nil:
			cur.WriteString(line + "\n")
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return blocks
}

func exampleFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(examplesDir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples in %s", examplesDir)
	}
	sort.Strings(files)
	return files
}

// TestExamplesApplyAndShow applies every example verbatim with kubectl and
// checks what `kubectl get` shows for them.
func TestExamplesApplyAndShow(t *testing.T) {
	t.Parallel()
	ns := env.Namespace(t)
	for _, f := range exampleFiles(t) {
		if out, errOut, err := env.Kubectl(t, "", "apply", "-n", ns, "-f", f); err != nil {
			t.Fatalf("kubectl apply -f %s: %v\n%s%s", filepath.Base(f), err, out, errOut)
		}
	}

	tests := []struct {
		args    []string
		columns []string
		names   []string
	}{
		{[]string{"get", "backups"}, []string{"NAME", "STATUS", "AGE"},
			[]string{"backup-example", "paused-backup-example", "paused-backup-stream-example", "tuned-backup"}},
		{[]string{"get", "backup"}, []string{"NAME", "STATUS", "AGE"},
			[]string{"backup-example", "paused-backup-example", "paused-backup-stream-example", "tuned-backup"}},
		{[]string{"get", "backups", "-o", "wide"}, []string{"NAME", "STATUS", "STREAMS", "LAG", "LAST UPLOAD", "AGE"},
			[]string{"backup-example", "paused-backup-example", "paused-backup-stream-example", "tuned-backup"}},
		{[]string{"get", "eventhubs"}, []string{"NAME", "TYPE", "STATUS", "AGE", "LOCATION"}, []string{"my-kafka-cluster"}},
		{[]string{"get", "storages"}, []string{"NAME", "STATUS", "AGE", "LOCATION"}, []string{"my-storage", "my-volume"}},
		{[]string{"get", "restores"}, []string{"NAME", "STATUS", "AGE"}, []string{"restore-example"}},
		{[]string{"get", "creds"}, []string{"NAME", "AGE"}, []string{"gcs-writer", "kafka-mtls", "kafka-sasl"}},
		{[]string{"get", "credentials"}, []string{"NAME", "AGE"}, []string{"gcs-writer", "kafka-mtls", "kafka-sasl"}},
		{[]string{"get", "armory"}, []string{"NAME"}, []string{
			"backup.kannika.io/backup-example", "backup.kannika.io/paused-backup-example",
			"backup.kannika.io/paused-backup-stream-example", "backup.kannika.io/tuned-backup",
			"credentials.kannika.io/gcs-writer", "credentials.kannika.io/kafka-mtls", "credentials.kannika.io/kafka-sasl",
			"eventhub.kannika.io/my-kafka-cluster",
			"restore.kannika.io/restore-example",
			"storage.kannika.io/my-storage", "storage.kannika.io/my-volume",
		}},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			out, errOut, err := env.Kubectl(t, "", append(tc.args, "-n", ns)...)
			if err != nil {
				t.Fatalf("kubectl %s: %v\n%s", strings.Join(tc.args, " "), err, errOut)
			}
			header, names := parseTable(out)
			if got, want := strings.Join(header, "|"), strings.Join(tc.columns, "|"); !strings.HasPrefix(got, want) || len(header) != len(tc.columns) && tc.args[1] != "armory" {
				t.Errorf("columns = %q, want %q\n%s", header, tc.columns, out)
			}
			sort.Strings(names)
			if got, want := strings.Join(names, " "), strings.Join(tc.names, " "); got != want {
				t.Errorf("names = %s\nwant    %s\n%s", got, want, out)
			}
		})
	}
}

// parseTable splits kubectl's table output into its column titles and the
// first column of each row (blank lines and repeated headers are skipped, as
// `kubectl get armory` prints one table per kind).
func parseTable(out string) (header, names []string) {
	for _, line := range strings.Split(out, "\n") {
		fields := splitColumns(line)
		if len(fields) == 0 {
			continue
		}
		if fields[0] == "NAME" {
			if header == nil {
				header = fields
			}
			continue
		}
		names = append(names, fields[0])
	}
	return header, names
}

// splitColumns splits on runs of two or more spaces, so "LAST UPLOAD" stays
// one column title.
func splitColumns(line string) []string {
	var fields []string
	for _, f := range strings.Split(line, "  ") {
		if f = strings.TrimSpace(f); f != "" {
			fields = append(fields, f)
		}
	}
	return fields
}

// TestExplain checks that the field descriptions written as Go doc comments
// reach `kubectl explain`.
func TestExplain(t *testing.T) {
	t.Parallel()
	tests := map[string][]string{
		"backup.spec.streams.enabled":              {"Set it to false to pause this stream only"},
		"backup.spec.enabled":                      {"Set it to false to pause the Backup", "<boolean>"},
		"backup.spec":                              {"source", "sink", "streams", "segmentRolloverTriggers", "EventHub (Kafka cluster) to read from"},
		"storage.spec.volume.storageClass":         {"cannot be changed", "once set"},
		"restore.spec.config.topics.partitions":    {"restoreFromOffset", "restoreUntilOffset", "(exclusive)"},
		"eventhub.spec.kafka.properties":           {"bootstrap.servers is required"},
		"credentials.spec.sasl.mechanism":          {"PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"},
		"backup.status.streams.partitions":         {"lastOffsetStored", "lag"},
		"backup.spec.segmentRolloverTriggers.size": {"uncompressed"},
	}
	// The API server publishes a new CRD's OpenAPI a moment after the CRD is
	// established: wait until explain knows the kind.
	testenv.WaitFor(t, 30*time.Second, "kubectl explain to know backups", func() (bool, string) {
		_, errOut, err := env.Kubectl(t, "", "explain", "backup")
		return err == nil, errOut
	})
	for field, wants := range tests {
		out, errOut, err := env.Kubectl(t, "", "explain", field)
		if err != nil {
			t.Errorf("kubectl explain %s: %v\n%s", field, err, errOut)
			continue
		}
		for _, want := range wants {
			if !strings.Contains(out, want) {
				t.Errorf("kubectl explain %s does not say %q:\n%s", field, want, out)
			}
		}
	}
}
