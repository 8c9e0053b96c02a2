// Package testenv starts a real kube-apiserver and etcd on loopback, with
// Armory's generated CRDs installed, for the project's tests.
//
// The binaries are built from the Go module proxy by scripts/k8s-binaries.sh
// into a version-keyed cache; KUBEBUILDER_ASSETS may point at them instead.
// envtest starts the processes; it is a test-only dependency, never imported by
// the product.
package testenv

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/kannika/armory/generated/clientset/versioned"
)

// Env is a running API server with Armory's CRDs.
type Env struct {
	// Config reaches the API server as a cluster admin.
	Config *rest.Config
	// Kubeconfig is the path of a kubeconfig file for the same user.
	Kubeconfig string
	// KubectlPath is a kubectl of the API server's version.
	KubectlPath string
	// Kube and Armory are clients for Config.
	Kube   kubernetes.Interface
	Armory versioned.Interface

	env    *envtest.Environment
	dir    string
	assets string
}

// RepoRoot is the root of the Armory checkout these sources are in.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Start builds (once, cached) and starts kube-apiserver and etcd, installs the
// CRDs from deploy/crds, and waits until they are served.
func Start() (*Env, error) {
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		out, err := exec.Command(filepath.Join(RepoRoot(), "scripts", "k8s-binaries.sh")).Output()
		if err != nil {
			return nil, fmt.Errorf("build kube-apiserver and etcd with scripts/k8s-binaries.sh: %w", err)
		}
		assets = strings.TrimSpace(string(out))
	}
	reapOrphans(assets)
	dir, err := os.MkdirTemp("", "armory-testenv-")
	if err != nil {
		return nil, err
	}
	e := &Env{dir: dir, assets: assets, KubectlPath: filepath.Join(assets, "kubectl")}
	e.env = &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDDirectoryPaths:     []string{filepath.Join(RepoRoot(), "deploy", "crds")},
		ErrorIfCRDPathMissing: true,
	}
	e.Config, err = e.env.Start()
	recordServers(assets)
	if err != nil {
		// Start can fail after the servers run (e.g. a CRD is refused).
		_ = e.Stop()
		return nil, fmt.Errorf("start kube-apiserver and etcd: %w", err)
	}
	if err := e.finishSetup(); err != nil {
		_ = e.Stop()
		return nil, err
	}
	return e, nil
}

func (e *Env) finishSetup() error {
	var err error
	if e.Kube, err = kubernetes.NewForConfig(e.Config); err != nil {
		return err
	}
	if e.Armory, err = versioned.NewForConfig(e.Config); err != nil {
		return err
	}
	admin, err := e.env.AddUser(envtest.User{Name: "armory-test-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return fmt.Errorf("add admin user: %w", err)
	}
	kubeconfig, err := admin.KubeConfig()
	if err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	e.Kubeconfig = filepath.Join(e.dir, "kubeconfig")
	return os.WriteFile(e.Kubeconfig, kubeconfig, 0o600)
}

// Stop stops the API server and etcd and removes their files.
func (e *Env) Stop() error {
	err := e.env.Stop()
	if err == nil {
		forgetServers(e.assets)
	}
	_ = os.RemoveAll(e.dir)
	return err
}

// Main runs a test package's tests against one shared API server: call it from
// TestMain. The server is stopped when the tests end, then cleanups run (in
// reverse order). Main exits the process, so TestMain's own defers would
// never run: pass what must be cleaned up here.
func Main(m *testing.M, env **Env, cleanups ...func()) {
	runCleanups := func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
	}
	e, err := Start()
	if err != nil {
		fmt.Fprintf(os.Stderr, "testenv: %v\n", err)
		runCleanups()
		os.Exit(1)
	}
	*env = e
	code := m.Run()
	if err := e.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "testenv: stop: %v\n", err)
	}
	runCleanups()
	os.Exit(code)
}

var namespaceSeq atomic.Int64

// Namespace creates a namespace of its own for one test, so that parallel
// tests sharing the API server do not see each other's objects. Nothing
// garbage-collects here, so it is left for the server's shutdown.
func (e *Env) Namespace(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("t%d-%s", namespaceSeq.Add(1), sanitize(t.Name()))
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := e.Kube.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create namespace %s: %v", name, err)
	}
	return name
}

// sanitize makes a test name usable in a namespace name (63 characters at most).
func sanitize(name string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	s := strings.Trim(b.String(), "-")
	if len(s) > 50 {
		s = strings.TrimRight(s[:50], "-")
	}
	return s
}

// Kubectl runs kubectl against the API server and returns its standard
// output and standard error. It fails the test only if kubectl cannot start;
// a non-zero exit is returned as err for the test to judge.
func (e *Env) Kubectl(t testing.TB, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.KubectlPath, append([]string{"--kubeconfig", e.Kubeconfig}, args...)...)
	cmd.Env = append(os.Environ(), "KUBECACHEDIR="+filepath.Join(e.dir, "kubectl-cache"), "HOME="+e.dir)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	if _, isExit := err.(*exec.ExitError); err != nil && !isExit {
		t.Fatalf("run kubectl %s: %v", strings.Join(args, " "), err)
	}
	return out.String(), errOut.String(), err
}

// BuildArmory builds the armory binary of this checkout, as users and
// Deployments run it, into a new temporary folder, and returns its path and a
// cleanup that removes the folder. With ARMORY_TEST_RACE=1 it is built with
// the race detector (as make test does), so the subprocesses that tests run
// are checked too.
func BuildArmory() (bin string, cleanup func(), err error) {
	dir, err := os.MkdirTemp("", "armory-bin-")
	if err != nil {
		return "", nil, err
	}
	cleanup = func() { _ = os.RemoveAll(dir) }
	bin = filepath.Join(dir, "armory")
	args := []string{"build", "-o", bin}
	if os.Getenv("ARMORY_TEST_RACE") == "1" {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, ".")...)
	build.Dir = RepoRoot()
	if out, err := build.CombinedOutput(); err != nil {
		cleanup()
		return "", nil, fmt.Errorf("go build armory: %w\n%s", err, out)
	}
	return bin, cleanup, nil
}

// BuildArmoryWithoutRace builds armory without the race detector into a
// folder of the test's own. Tests that run armory at -v=9 and above need
// it: client-go's request timing at those levels has a data race of its own
// (its TLS handshake trace written by a dialing goroutine while the request
// reads it), which a race-built process reports by exiting 66.
func BuildArmoryWithoutRace(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "armory")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = RepoRoot()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build armory: %v\n%s", err, out)
	}
	return bin
}

// KubeconfigAs writes a kubeconfig that acts as user (e.g. a ServiceAccount,
// "system:serviceaccount:ns:name") through impersonation, so a process run
// with it has exactly that user's permissions.
func (e *Env) KubeconfigAs(t testing.TB, user string) string {
	t.Helper()
	cfg, err := clientcmd.LoadFromFile(e.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	for _, auth := range cfg.AuthInfos {
		auth.Impersonate = user
	}
	path := filepath.Join(t.TempDir(), "kubeconfig-as")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}
