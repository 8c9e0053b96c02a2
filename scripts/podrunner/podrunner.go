// Package podrunner plays the kubelet and the Job controller for Armory's
// workers on a machine with an API server but no nodes: `make demo` and
// tests use it. It is development tooling, never part of the armory binary.
//
// For every Deployment and Job in its namespace it runs the pod template's
// container as a local process, with the template's own command, args and
// environment:
//
//   - The image's entrypoint is the armory binary, so the command's first
//     word is replaced by the local armory.
//   - The process acts as the pod's ServiceAccount, through a kubeconfig
//     that impersonates it ($KUBECONFIG), so the worker's RBAC is what a
//     cluster would enforce.
//   - Each process binds its metrics and health endpoints to free loopback
//     ports (in a cluster each pod has its own IP), and a claim mounted at
//     the worker's storage path becomes a local folder (--storage-path).
//   - POD_NAME and POD_NAMESPACE come from the downward API, as in a pod.
//
// A Deployment gets spec.replicas processes; a changed template stops the old
// ones before starting new ones (Armory's Deployments are Recreate); a
// process that exits is restarted with a growing delay, as a crash loop is.
// A Job gets one process while it is not suspended and not finished: exit 0
// marks it Complete, an exit code its podFailurePolicy fails on, or more
// failures than its backoffLimit, mark it Failed, and an exit code the policy
// ignores is restarted without counting. Stopping a process is SIGTERM, then
// SIGKILL after the pod's termination grace period.
package podrunner

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"

	"github.com/kannika/armory/pkg/controller/backup"
)

// Config is what a Runner needs.
type Config struct {
	// Kube is an admin client: the runner reads Deployments and Jobs and
	// writes Job status, as the kubelet and the Job controller do.
	Kube kubernetes.Interface
	// Kubeconfig is the admin kubeconfig file; the workers' impersonating
	// kubeconfigs are derived from it.
	Kubeconfig string
	// Namespace is the only namespace whose workloads run.
	Namespace string
	// Binary is the local armory that replaces the image's entrypoint.
	Binary string
	// Dir holds the processes' logs, kubeconfigs and claim folders.
	Dir string
	// Events, if set, receives one line per process start and exit.
	Events io.Writer
	// ExtraArgs are added to every worker's command line (e.g. shorter
	// Lease timings in tests).
	ExtraArgs []string
}

// A Runner runs the workers of one namespace until its context ends.
type Runner struct {
	cfg Config

	mu sync.Mutex
	// pods are the running or restarting processes, by owner ("Deployment/x"
	// or "Job/x").
	pods map[string][]*pod
	// jobs counts each Job's failures and remembers the ones finished, by name.
	jobs map[string]*jobState
	// started lists every process PID the runner ever started, in order.
	started []int
	trigger chan struct{}
}

type jobState struct {
	failures int32
	done     bool
}

// pod is one local process standing for a pod.
type pod struct {
	name     string
	hash     string // of the pod template it runs
	template corev1.PodTemplateSpec
	cmd      *exec.Cmd
	exited   chan struct{}
	exitCode int
	// restarts and notBefore are the crash-loop back-off.
	restarts  int
	notBefore time.Time
	stopping  bool
	startedAt time.Time
	// exitSeen: the Job pod's last exit has been counted.
	exitSeen bool
}

// New makes a Runner; Run starts it.
func New(cfg Config) *Runner {
	return &Runner{cfg: cfg, pods: map[string][]*pod{}, jobs: map[string]*jobState{}, trigger: make(chan struct{}, 1)}
}

// Started returns the PIDs of every process the runner started.
func (r *Runner) Started() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.started)
}

// PIDs returns the PIDs of the processes running for an owner
// ("Deployment/name" or "Job/name").
func (r *Runner) PIDs(owner string) []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []int
	for _, p := range r.pods[owner] {
		if p.cmd != nil && !isClosed(p.exited) {
			out = append(out, p.cmd.Process.Pid)
		}
	}
	return out
}

// Run watches the namespace's Deployments and Jobs and keeps the processes
// in step with them until ctx ends; then it stops every process and returns.
func (r *Runner) Run(ctx context.Context) error {
	if err := os.MkdirAll(r.cfg.Dir, 0o755); err != nil {
		return err
	}
	factory := informers.NewSharedInformerFactoryWithOptions(r.cfg.Kube, 0, informers.WithNamespace(r.cfg.Namespace))
	deployments := factory.Apps().V1().Deployments()
	jobs := factory.Batch().V1().Jobs()
	poke := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { r.poke() },
		UpdateFunc: func(any, any) { r.poke() },
		DeleteFunc: func(any) { r.poke() },
	}
	if _, err := deployments.Informer().AddEventHandler(poke); err != nil {
		return err
	}
	if _, err := jobs.Informer().AddEventHandler(poke); err != nil {
		return err
	}
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), deployments.Informer().HasSynced, jobs.Informer().HasSynced) {
		r.stopAll()
		return ctx.Err()
	}
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			r.stopAll()
			return nil
		case <-r.trigger:
		case <-tick.C:
		}
		ds, _ := deployments.Lister().Deployments(r.cfg.Namespace).List(labels.Everything())
		js, _ := jobs.Lister().Jobs(r.cfg.Namespace).List(labels.Everything())
		r.sync(ctx, ds, js)
	}
}

func (r *Runner) poke() {
	select {
	case r.trigger <- struct{}{}:
	default:
	}
}

// sync brings the processes in step with the workloads.
func (r *Runner) sync(ctx context.Context, ds []*appsv1.Deployment, js []*batchv1.Job) {
	want := map[string]bool{}
	for _, d := range ds {
		key := "Deployment/" + d.Name
		want[key] = true
		r.syncDeployment(key, d)
	}
	for _, j := range js {
		key := "Job/" + j.Name
		want[key] = true
		r.syncJob(ctx, key, j)
	}
	// Workloads deleted: their pods go too.
	r.mu.Lock()
	var gone []string
	for key := range r.pods {
		if !want[key] {
			gone = append(gone, key)
		}
	}
	r.mu.Unlock()
	for _, key := range gone {
		r.stopOwner(key)
	}
}

func (r *Runner) syncDeployment(key string, d *appsv1.Deployment) {
	replicas := int(ptr.Deref(d.Spec.Replicas, 1))
	hash := templateHash(d.Spec.Template)
	r.mu.Lock()
	pods := r.pods[key]
	stale := false
	for _, p := range pods {
		stale = stale || p.hash != hash
	}
	r.mu.Unlock()
	// Recreate: every old pod stops before a new one starts.
	if stale || len(pods) > replicas {
		r.stopOwner(key)
		pods = nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for len(pods) < replicas {
		pods = append(pods, &pod{name: fmt.Sprintf("%s-%s-%s", d.Name, hash[:10], rand.String(5)), hash: hash, template: d.Spec.Template})
	}
	r.pods[key] = pods
	for _, p := range pods {
		if p.cmd == nil || (isClosed(p.exited) && !p.stopping) {
			r.startOrBackOff(p, d.Namespace)
		}
	}
}

func (r *Runner) syncJob(ctx context.Context, key string, j *batchv1.Job) {
	r.mu.Lock()
	st := r.jobs[j.Name+"/"+string(j.UID)]
	if st == nil {
		st = &jobState{done: finished(j)}
		r.jobs[j.Name+"/"+string(j.UID)] = st
	}
	pods := r.pods[key]
	r.mu.Unlock()

	if ptr.Deref(j.Spec.Suspend, false) || st.done {
		r.stopOwner(key)
		return
	}
	r.mu.Lock()
	if len(pods) == 0 {
		pods = []*pod{{name: fmt.Sprintf("%s-%s", j.Name, rand.String(5)), template: j.Spec.Template}}
		r.pods[key] = pods
	}
	p := pods[0]
	switch {
	case p.cmd == nil:
		r.startOrBackOff(p, j.Namespace)
		start := p.startedAt
		r.mu.Unlock()
		r.writeJobStatus(ctx, j, func(s *batchv1.JobStatus) {
			if s.StartTime == nil {
				s.StartTime = ptr.To(metav1.NewTime(start))
			}
			s.Active = 1
		})
		return
	case !isClosed(p.exited) || p.stopping:
		r.mu.Unlock()
		return
	case p.exitSeen:
		// Counted already: run again once the back-off has passed.
		r.startOrBackOff(p, j.Namespace)
		r.mu.Unlock()
		return
	}
	p.exitSeen = true
	code := p.exitCode
	r.mu.Unlock()

	// The pod ended: what the Job controller would make of its exit code.
	action := jobAction(j, code)
	switch {
	case code == 0:
		st.done = true
		r.writeJobStatus(ctx, j, func(s *batchv1.JobStatus) {
			now := metav1.Now()
			s.Active, s.Succeeded = 0, 1
			s.CompletionTime = &now
			s.Conditions = append(s.Conditions,
				batchv1.JobCondition{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue, Reason: "CompletionsReached", Message: "Reached expected number of succeeded pods", LastProbeTime: now, LastTransitionTime: now},
				batchv1.JobCondition{Type: batchv1.JobComplete, Status: corev1.ConditionTrue, Reason: "CompletionsReached", Message: "Reached expected number of succeeded pods", LastProbeTime: now, LastTransitionTime: now})
		})
		r.forget(key)
		return
	case action == batchv1.PodFailurePolicyActionIgnore:
		return // run again, not counted
	}
	st.failures++
	reason, msg := "", ""
	switch {
	case action == batchv1.PodFailurePolicyActionFailJob:
		reason, msg = batchv1.JobReasonPodFailurePolicy, fmt.Sprintf("Container %s for pod %s/%s failed with exit code %d matching FailJob rule at index 0", backup.ContainerName, j.Namespace, p.name, code)
	case st.failures > ptr.Deref(j.Spec.BackoffLimit, 6):
		reason, msg = batchv1.JobReasonBackoffLimitExceeded, "Job has reached the specified backoff limit"
	}
	failures := st.failures
	if reason == "" {
		r.writeJobStatus(ctx, j, func(s *batchv1.JobStatus) { s.Failed = failures })
		return // run again after the back-off
	}
	st.done = true
	r.writeJobStatus(ctx, j, func(s *batchv1.JobStatus) {
		now := metav1.Now()
		s.Active, s.Failed = 0, failures
		s.Conditions = append(s.Conditions,
			batchv1.JobCondition{Type: batchv1.JobFailureTarget, Status: corev1.ConditionTrue, Reason: reason, Message: msg, LastProbeTime: now, LastTransitionTime: now},
			batchv1.JobCondition{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: reason, Message: msg, LastProbeTime: now, LastTransitionTime: now})
	})
	r.forget(key)
}

// jobAction is the podFailurePolicy's action for an exit code, or "" when no
// rule matches (the failure counts towards backoffLimit).
func jobAction(j *batchv1.Job, code int) batchv1.PodFailurePolicyAction {
	if j.Spec.PodFailurePolicy == nil || code == 0 {
		return ""
	}
	for _, rule := range j.Spec.PodFailurePolicy.Rules {
		req := rule.OnExitCodes
		if req == nil {
			continue
		}
		in := slices.Contains(req.Values, int32(code))
		if (req.Operator == batchv1.PodFailurePolicyOnExitCodesOpIn) == in {
			return rule.Action
		}
	}
	return ""
}

func finished(j *batchv1.Job) bool {
	for _, c := range j.Status.Conditions {
		if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

// writeJobStatus changes a Job's status from what the API server holds now.
func (r *Runner) writeJobStatus(ctx context.Context, j *batchv1.Job, change func(*batchv1.JobStatus)) {
	jobs := r.cfg.Kube.BatchV1().Jobs(j.Namespace)
	for range 5 {
		cur, err := jobs.Get(ctx, j.Name, metav1.GetOptions{})
		if err != nil {
			r.event("job %s: read for its status: %v", j.Name, err)
			return
		}
		if cur.UID != j.UID {
			return
		}
		if cur.Status.StartTime == nil {
			cur.Status.StartTime = ptr.To(metav1.Now())
		}
		change(&cur.Status)
		if _, err = jobs.UpdateStatus(ctx, cur, metav1.UpdateOptions{}); err == nil {
			return
		}
		r.event("job %s: status not written: %v", j.Name, err)
	}
}

// startOrBackOff starts a pod's process now, or once its crash-loop delay
// has passed. r.mu is held.
func (r *Runner) startOrBackOff(p *pod, ns string) {
	if time.Now().Before(p.notBefore) {
		return
	}
	if p.cmd != nil {
		p.restarts++
	}
	if err := r.start(p, ns); err != nil {
		r.event("%s: cannot start: %v", p.name, err)
		p.notBefore = time.Now().Add(backOff(p.restarts))
	}
}

// backOff is the kubelet's crash-loop delay, shortened for a laptop.
func backOff(restarts int) time.Duration {
	d := time.Second << min(restarts, 4)
	return min(d, 10*time.Second)
}

// start runs the pod's container as a process. r.mu is held.
func (r *Runner) start(p *pod, ns string) error {
	spec := p.template.Spec
	if len(spec.Containers) != 1 {
		return fmt.Errorf("the pod template has %d containers; the runner runs exactly one", len(spec.Containers))
	}
	c := spec.Containers[0]
	argv := append(slices.Clone(c.Command), c.Args...)
	if len(argv) == 0 {
		return errors.New("the container has no command: the runner cannot know the image's entrypoint")
	}
	argv = append(argv[1:], "--metrics-bind-address=127.0.0.1:0", "--health-probe-bind-address=127.0.0.1:0")
	for _, m := range c.VolumeMounts {
		if m.MountPath != backup.StorageMountPath {
			continue
		}
		claim := claimOf(spec, m.Name)
		if claim == "" {
			return fmt.Errorf("volume %q mounted at %s is not a claim", m.Name, m.MountPath)
		}
		dir := filepath.Join(r.cfg.Dir, "claims", ns, claim)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		argv = append(argv, "--storage-path="+dir)
	}
	argv = append(argv, r.cfg.ExtraArgs...)

	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env = append(env, e.Name+"="+e.Value)
		case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name":
			env = append(env, e.Name+"="+p.name)
		case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.namespace":
			env = append(env, e.Name+"="+ns)
		default:
			return fmt.Errorf("env %s: only literals, metadata.name and metadata.namespace are supported", e.Name)
		}
	}
	sa := spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	kubeconfig, err := r.kubeconfigAs(ns, sa)
	if err != nil {
		return err
	}
	env = append(env, "KUBECONFIG="+kubeconfig)

	logPath := filepath.Join(r.cfg.Dir, "logs", p.name+".log")
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return err
	}
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(r.cfg.Binary, argv...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Its own process group, so a Ctrl-C meant for the demo reaches the
	// workers only through the runner (SIGTERM, as a kubelet sends); and
	// gone with the runner if it dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return err
	}
	p.cmd, p.exited, p.stopping, p.startedAt, p.exitSeen = cmd, make(chan struct{}), false, time.Now(), false
	r.started = append(r.started, cmd.Process.Pid)
	r.event("%s: started pid %d: armory %s (log %s)", p.name, cmd.Process.Pid, strings.Join(argv[:min(2, len(argv))], " "), logPath)
	exited := p.exited
	go func() {
		err := cmd.Wait()
		logFile.Close()
		r.mu.Lock()
		p.exitCode = cmd.ProcessState.ExitCode()
		stopping := p.stopping
		// A pod that ran for 10 minutes starts its back-off afresh.
		if time.Since(p.startedAt) > 10*time.Minute {
			p.restarts = 0
		}
		p.notBefore = time.Now().Add(backOff(p.restarts))
		r.mu.Unlock()
		if !stopping {
			r.event("%s: pid %d exited: %v", p.name, cmd.Process.Pid, exitText(err))
		}
		close(exited)
		r.poke()
	}()
	return nil
}

func exitText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

func claimOf(spec corev1.PodSpec, volume string) string {
	for _, v := range spec.Volumes {
		if v.Name == volume && v.PersistentVolumeClaim != nil {
			return v.PersistentVolumeClaim.ClaimName
		}
	}
	return ""
}

// kubeconfigAs writes (once) a kubeconfig that acts as a ServiceAccount.
func (r *Runner) kubeconfigAs(ns, sa string) (string, error) {
	path := filepath.Join(r.cfg.Dir, "kubeconfigs", ns+"-"+sa)
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	cfg, err := clientcmd.LoadFromFile(r.cfg.Kubeconfig)
	if err != nil {
		return "", err
	}
	for _, auth := range cfg.AuthInfos {
		auth.Impersonate = "system:serviceaccount:" + ns + ":" + sa
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", err
	}
	return path, clientcmd.WriteToFile(*cfg, path)
}

// stopOwner stops every process of an owner and forgets them.
func (r *Runner) stopOwner(key string) {
	r.mu.Lock()
	pods := r.pods[key]
	delete(r.pods, key)
	r.mu.Unlock()
	r.stop(pods)
}

func (r *Runner) forget(key string) {
	r.mu.Lock()
	delete(r.pods, key)
	r.mu.Unlock()
}

func (r *Runner) stopAll() {
	r.mu.Lock()
	var pods []*pod
	for _, ps := range r.pods {
		pods = append(pods, ps...)
	}
	r.pods = map[string][]*pod{}
	r.mu.Unlock()
	r.stop(pods)
}

// stop sends SIGTERM to each running process and SIGKILL to those still
// running after their grace period, as the kubelet does.
func (r *Runner) stop(pods []*pod) {
	var wg sync.WaitGroup
	for _, p := range pods {
		r.mu.Lock()
		running := p.cmd != nil && !isClosed(p.exited)
		p.stopping = true
		r.mu.Unlock()
		if !running {
			continue
		}
		wg.Go(func() {
			grace := time.Duration(ptr.Deref(p.template.Spec.TerminationGracePeriodSeconds, 30)) * time.Second
			pid := p.cmd.Process.Pid
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.exited:
				r.event("%s: pid %d stopped (SIGTERM), exit code %d", p.name, pid, p.exitCode)
			case <-time.After(grace):
				_ = p.cmd.Process.Kill()
				<-p.exited
				r.event("%s: pid %d killed after its %s grace period", p.name, pid, grace)
			}
		})
	}
	wg.Wait()
}

func (r *Runner) event(format string, args ...any) {
	if r.cfg.Events != nil {
		fmt.Fprintf(r.cfg.Events, "podrunner: "+format+"\n", args...)
	}
}

func templateHash(t corev1.PodTemplateSpec) string {
	data, _ := json.Marshal(t)
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

func isClosed(c chan struct{}) bool {
	if c == nil {
		return false
	}
	select {
	case <-c:
		return true
	default:
		return false
	}
}
