package cmd_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kannika/armory/pkg/testenv"
)

// armory is the binary built from this checkout, as users and Deployments run it.
var armory string

func TestMain(m *testing.M) {
	bin, cleanup, err := testenv.BuildArmory()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	armory = bin
	code := m.Run()
	cleanup()
	os.Exit(code)
}

func run(t *testing.T, args ...string) (stdout, stderr string, exitCode int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, armory, args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		return out.String(), errOut.String(), exit.ExitCode()
	case err != nil:
		t.Fatalf("run armory %s: %v", strings.Join(args, " "), err)
	}
	return out.String(), errOut.String(), 0
}

func TestWorkerNeedsExactlyOneResource(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"worker"}, "pass --backup=NAME to run a Backup or --restore=NAME to run a Restore"},
		{[]string{"worker", "--backup=a", "--restore=b"}, "pass only one of --backup and --restore"},
		{[]string{"worker", "--backup=Not_A_Name"}, `--backup="Not_A_Name" is not a valid resource name`},
		{[]string{"worker", "--restore="}, "pass --backup=NAME to run a Backup or --restore=NAME to run a Restore"},
	}
	for _, tc := range tests {
		_, stderr, code := run(t, tc.args...)
		if code == 0 {
			t.Errorf("armory %s exited 0", strings.Join(tc.args, " "))
		}
		if !strings.Contains(stderr, tc.want) {
			t.Errorf("armory %s: stderr %q does not say %q", strings.Join(tc.args, " "), stderr, tc.want)
		}
	}
}

// TestRestoreWithoutAClusterSaysWhatToPass: a restore run from a laptop
// with a wrong kubeconfig says which file, and exits non-zero.
func TestRestoreWithoutAClusterSaysWhatToPass(t *testing.T) {
	t.Parallel()
	_, stderr, code := run(t, "worker", "--restore=restore-example", "--kubeconfig", "/nonexistent/kubeconfig")
	if code == 0 || !strings.Contains(stderr, "/nonexistent/kubeconfig") {
		t.Errorf("exit %d, stderr %q; want a non-zero exit naming the kubeconfig", code, stderr)
	}
}

func TestHelpExplainsFlags(t *testing.T) {
	t.Parallel()
	tests := map[string][]string{
		"controller": {"--kubeconfig", "--namespace", "--leader-elect", "--worker-image", "required outside a pod",
			"--worker-image ghcr.io/kannika/armory:v0.3.0", `"0" to turn them off`,
			"--metrics-bind-address", "--health-probe-bind-address", "-v, --v"},
		"worker": {"--kubeconfig", "--namespace", "--backup", "--restore",
			"--metrics-bind-address", "--health-probe-bind-address", "Name of the Backup to run",
			"--transaction-records", "--parallel-partitions", "exits 0 when every selected record"},
	}
	for sub, wants := range tests {
		stdout, stderr, code := run(t, sub, "--help")
		if code != 0 {
			t.Fatalf("armory %s --help: exit %d: %s", sub, code, stderr)
		}
		for _, want := range wants {
			if !strings.Contains(stdout, want) {
				t.Errorf("armory %s --help does not mention %q:\n%s", sub, want, stdout)
			}
		}
	}
}

func TestControllerWithoutAClusterSaysWhatToPass(t *testing.T) {
	t.Parallel()
	_, stderr, code := run(t, "controller", "--kubeconfig", "/nonexistent/kubeconfig")
	if code == 0 || !strings.Contains(stderr, "load kubeconfig") || !strings.Contains(stderr, "/nonexistent/kubeconfig") {
		t.Errorf("exit %d, stderr %q; want a non-zero exit naming the kubeconfig", code, stderr)
	}
}

// TestVersion: `armory version` and `armory --version` print the version
// and the commit the binary was built with (as make build sets them).
func TestVersion(t *testing.T) {
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "armory")
	build := exec.Command("go", "build", "-o", bin, "-ldflags",
		"-X github.com/kannika/armory/pkg/cmd.version=v9.9.9-test -X github.com/kannika/armory/pkg/cmd.commit=0123abcd", ".")
	build.Dir = testenv.RepoRoot()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, args := range [][]string{{"version"}, {"--version"}} {
		out, err := exec.Command(bin, args...).Output()
		if err != nil || !strings.HasPrefix(string(out), "armory v9.9.9-test (commit 0123abcd, go1.") {
			t.Errorf("armory %s: %v, %q", strings.Join(args, " "), err, out)
		}
	}
}
