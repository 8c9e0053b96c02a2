package controller_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/kannika/armory/apis/kannika/v1alpha"
	"github.com/kannika/armory/pkg/testenv"
	"github.com/kannika/armory/pkg/workerlease"
)

var (
	env    *testenv.Env
	armory string // the armory binary built from this checkout
)

func TestMain(m *testing.M) {
	bin, removeBin, err := testenv.BuildArmory()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	armory = bin
	testenv.Main(m, &env, removeBin)
}

// controllerProcess is `armory controller` running against the test API
// server, as a user would run it, limited to one namespace.
type controllerProcess struct {
	t           *testing.T
	cmd         *exec.Cmd
	log         *testenv.Output
	healthAddr  string
	metricsAddr string
	done        chan struct{}
}

// Lease timings of the test controllers: short, so failover tests are quick.
const (
	controllerLeaseDuration = 4 * time.Second
	workerLeaseDuration     = 3 * time.Second
)

func startController(t *testing.T, ns, image string, extraArgs ...string) *controllerProcess {
	t.Helper()
	return startControllerBinary(t, armory, ns, image, extraArgs...)
}

// startControllerBinary is startController with another armory binary.
func startControllerBinary(t *testing.T, binary, ns, image string, extraArgs ...string) *controllerProcess {
	t.Helper()
	p := &controllerProcess{t: t, log: &testenv.Output{}, healthAddr: testenv.FreeAddr(t), metricsAddr: testenv.FreeAddr(t), done: make(chan struct{})}
	p.cmd = exec.Command(binary, "controller",
		"--kubeconfig", env.Kubeconfig,
		"--namespace", ns,
		"--leader-election-namespace", ns,
		"--leader-elect-lease-duration", controllerLeaseDuration.String(),
		"--leader-elect-renew-deadline", "3s",
		"--leader-elect-retry-period", "500ms",
		"--worker-image", image,
		"--metrics-bind-address", p.metricsAddr,
		"--health-probe-bind-address", p.healthAddr,
		"-v=2")
	p.cmd.Args = append(p.cmd.Args, extraArgs...)
	// Die with the test binary, even if it panics.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("controller log (%s):\n%s", image, p.log.String())
		}
	})
	testenv.WaitFor(t, 30*time.Second, "the controller's /readyz", func() (bool, string) {
		code, body := testenv.HTTPGet(p.healthAddr, "/readyz")
		return code == http.StatusOK, fmt.Sprintf("%d %s", code, body)
	})
	return p
}

// stop sends SIGTERM and waits for a graceful exit (SIGKILL after 20s).
func (p *controllerProcess) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		p.t.Errorf("the controller did not stop within 20s of SIGTERM")
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		p.t.Errorf("the controller exited with %d after SIGTERM (66: a data race)", code)
	}
}

func ctx() context.Context { return context.Background() }

func backupOf(t *testing.T, ns, name string) *v1alpha.Backup {
	t.Helper()
	b, err := env.Armory.KannikaV1alpha().Backups(ns).Get(ctx(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// waitForPhase waits until a Backup shows a phase and message.
func waitForPhase(t *testing.T, ns, name string, phase v1alpha.Phase, message string) *v1alpha.Backup {
	t.Helper()
	var b *v1alpha.Backup
	testenv.WaitFor(t, 30*time.Second, fmt.Sprintf("Backup %s to be %s %q", name, phase, message), func() (bool, string) {
		got, err := env.Armory.KannikaV1alpha().Backups(ns).Get(ctx(), name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		b = got
		return got.Status.Phase == phase && got.Status.Message == message && got.Status.ObservedGeneration == got.Generation,
			fmt.Sprintf("%s %q (observed generation %d of %d)", got.Status.Phase, got.Status.Message, got.Status.ObservedGeneration, got.Generation)
	})
	return b
}

// waitForReplicas waits until a Backup's Deployment exists with n replicas.
func waitForReplicas(t *testing.T, ns, backup string, n int32) {
	t.Helper()
	testenv.WaitFor(t, 30*time.Second, fmt.Sprintf("Deployment %s-backup at %d replicas", backup, n), func() (bool, string) {
		d, err := env.Kube.AppsV1().Deployments(ns).Get(ctx(), backup+"-backup", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return ptr.Deref(d.Spec.Replicas, -1) == n, fmt.Sprintf("%d replicas", ptr.Deref(d.Spec.Replicas, -1))
	})
}

func kubectl(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	out, errOut, err := env.Kubectl(t, stdin, args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s%s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

func applyExample(t *testing.T, ns string, names ...string) {
	t.Helper()
	for _, name := range names {
		kubectl(t, "", "apply", "-n", ns, "-f", filepath.Join(testenv.RepoRoot(), "docs", "examples", name+".yaml"))
	}
}

// workerLease stands in for a worker: it takes the Backup's Lease, as the
// worker does with client-go leaderelection, and renews it until stopped.
type workerLease struct {
	stop        chan struct{}
	stopped     chan struct{}
	lastRenewal time.Time
}

func holdWorkerLease(t *testing.T, ns, backup string) *workerLease {
	t.Helper()
	leases := env.Kube.CoordinationV1().Leases(ns)
	name := workerlease.ForBackup(backup)
	now := metav1.NewMicroTime(time.Now())
	lease := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: workerlease.BackupLabels(backup)},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To("test-worker"), AcquireTime: &now, RenewTime: &now,
			LeaseDurationSeconds: ptr.To(int32(workerLeaseDuration.Seconds()))},
	}
	if _, err := leases.Create(ctx(), lease, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	w := &workerLease{stop: make(chan struct{}), stopped: make(chan struct{}), lastRenewal: now.Time}
	go func() {
		defer close(w.stopped)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for range 120 { // at most two minutes
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
			l, err := leases.Get(ctx(), name, metav1.GetOptions{})
			if err != nil {
				continue
			}
			renewed := metav1.NewMicroTime(time.Now())
			l.Spec.RenewTime = &renewed
			if _, err := leases.Update(ctx(), l, metav1.UpdateOptions{}); err == nil {
				w.lastRenewal = renewed.Time
			}
		}
	}()
	t.Cleanup(func() { w.release() })
	return w
}

// release stops renewing and returns the time of the last renewal.
func (w *workerLease) release() time.Time {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.stopped
	return w.lastRenewal
}

// eventsOf lists a Backup's events as "Type/Reason", oldest first.
func eventsOf(t *testing.T, ns, name string) []string {
	t.Helper()
	list, err := env.Kube.CoreV1().Events(ns).List(ctx(), metav1.ListOptions{FieldSelector: "involvedObject.name=" + name})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range list.Items {
		for range max(e.Count, 1) {
			out = append(out, e.Type+"/"+e.Reason)
		}
	}
	return out
}

func isNotFound(err error) bool { return apierrors.IsNotFound(err) }
