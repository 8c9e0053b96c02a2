package podrunner

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/kannika/armory/pkg/controller/backup"
	"github.com/kannika/armory/pkg/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

// fakeWorker is the "armory" the runner starts: it records each run in
// $RUNS and exits with the codes of $CODES in turn (the last one repeats),
// or sleeps until SIGTERM when the code is "wait".
const fakeWorker = `#!/bin/sh
n=$(wc -l < "$RUNS" 2>/dev/null || echo 0)
echo "$POD_NAME $POD_NAMESPACE $KUBECONFIG $*" >> "$RUNS"
set -- $CODES
i=0
for c in "$@"; do code=$c; i=$((i+1)); [ $i -gt $n ] && break; done
if [ "$code" = wait ]; then trap 'exit 0' TERM; while :; do sleep 0.1; done; fi
exit $code
`

type setup struct {
	ns, runs string
	runner   *Runner
}

func start(t *testing.T) *setup {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "armory")
	if err := os.WriteFile(bin, []byte(fakeWorker), 0o755); err != nil {
		t.Fatal(err)
	}
	s := &setup{ns: env.Namespace(t), runs: filepath.Join(dir, "runs")}
	s.runner = New(Config{Kube: env.Kube, Kubeconfig: env.Kubeconfig, Namespace: s.ns, Binary: bin, Dir: filepath.Join(dir, "pods")})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = s.runner.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return s
}

func (s *setup) template(codes string) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "x"}},
		Spec: corev1.PodSpec{
			RestartPolicy:                 corev1.RestartPolicyNever,
			ServiceAccountName:            "worker-sa",
			TerminationGracePeriodSeconds: ptr.To[int64](5),
			Containers: []corev1.Container{{Name: backup.ContainerName, Image: "armory:test", Command: []string{"armory", "worker", "--restore=r"},
				Env: []corev1.EnvVar{
					{Name: "CODES", Value: codes}, {Name: "RUNS", Value: s.runs},
					{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
					{Name: "POD_NAMESPACE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}},
				}}},
		},
	}
}

func (s *setup) job(t *testing.T, name, codes string, backoffLimit int32, suspend bool) {
	t.Helper()
	j := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: s.ns}, Spec: batchv1.JobSpec{
		BackoffLimit: ptr.To(backoffLimit), Suspend: ptr.To(suspend), Template: s.template(codes),
		PodFailurePolicy: &batchv1.PodFailurePolicy{Rules: []batchv1.PodFailurePolicyRule{
			{Action: batchv1.PodFailurePolicyActionFailJob, OnExitCodes: &batchv1.PodFailurePolicyOnExitCodesRequirement{
				ContainerName: ptr.To(backup.ContainerName), Operator: batchv1.PodFailurePolicyOnExitCodesOpIn, Values: []int32{2}}},
			{Action: batchv1.PodFailurePolicyActionIgnore, OnExitCodes: &batchv1.PodFailurePolicyOnExitCodesRequirement{
				ContainerName: ptr.To(backup.ContainerName), Operator: batchv1.PodFailurePolicyOnExitCodesOpIn, Values: []int32{3}}},
		}},
	}}
	if _, err := env.Kube.BatchV1().Jobs(s.ns).Create(context.Background(), j, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// waitJob waits for a Job condition and returns the Job.
func (s *setup) waitJob(t *testing.T, name string, cond batchv1.JobConditionType) *batchv1.Job {
	t.Helper()
	var j *batchv1.Job
	testenv.WaitFor(t, 60*time.Second, fmt.Sprintf("Job %s %s", name, cond), func() (bool, string) {
		var err error
		if j, err = env.Kube.BatchV1().Jobs(s.ns).Get(context.Background(), name, metav1.GetOptions{}); err != nil {
			return false, err.Error()
		}
		for _, c := range j.Status.Conditions {
			if c.Type == cond && c.Status == corev1.ConditionTrue {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%+v", j.Status)
	})
	return j
}

func (s *setup) runCount(t *testing.T) int {
	t.Helper()
	data, _ := os.ReadFile(s.runs)
	n := 0
	for _, c := range data {
		if c == '\n' {
			n++
		}
	}
	return n
}

// TestJobsEndAsTheJobControllerWouldEndThem: the exit code decides, through
// the Job's podFailurePolicy and backoffLimit, and the API server accepts
// the status the runner writes.
func TestJobsEndAsTheJobControllerWouldEndThem(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, codes  string
		backoffLimit int32
		want         batchv1.JobConditionType
		reason       string
		runs         int
		failed       int32
	}{
		{"done", "0", 4, batchv1.JobComplete, "CompletionsReached", 1, 0},
		{"permanent", "2", 4, batchv1.JobFailed, batchv1.JobReasonPodFailurePolicy, 1, 1},
		{"interrupted-then-done", "3 3 0", 0, batchv1.JobComplete, "CompletionsReached", 3, 0},
		{"crashing", "1", 1, batchv1.JobFailed, batchv1.JobReasonBackoffLimitExceeded, 2, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := start(t)
			s.job(t, tc.name, tc.codes, tc.backoffLimit, false)
			j := s.waitJob(t, tc.name, tc.want)
			if c := condition(j, tc.want); c.Reason != tc.reason {
				t.Errorf("%s reason %q, want %q", tc.want, c.Reason, tc.reason)
			}
			if got := s.runCount(t); got != tc.runs {
				t.Errorf("the worker ran %d times, want %d", got, tc.runs)
			}
			if j.Status.Failed != tc.failed || j.Status.StartTime == nil || j.Status.Active != 0 {
				t.Errorf("status: failed %d (want %d), startTime %v, active %d", j.Status.Failed, tc.failed, j.Status.StartTime, j.Status.Active)
			}
			if tc.want == batchv1.JobComplete && (j.Status.Succeeded != 1 || j.Status.CompletionTime == nil) {
				t.Errorf("a complete Job: succeeded %d, completionTime %v", j.Status.Succeeded, j.Status.CompletionTime)
			}
		})
	}
}

func condition(j *batchv1.Job, typ batchv1.JobConditionType) batchv1.JobCondition {
	for _, c := range j.Status.Conditions {
		if c.Type == typ {
			return c
		}
	}
	return batchv1.JobCondition{}
}

// TestSuspendedJobsAndScaledDeploymentsRunNothing: suspending stops the
// process (SIGTERM), resuming starts it again; a Deployment runs its
// replicas, restarts a crashed one, and stops at 0.
func TestSuspendedJobsAndScaledDeploymentsRunNothing(t *testing.T) {
	t.Parallel()
	s := start(t)
	ctx := context.Background()
	s.job(t, "suspended", "wait", 4, true)
	time.Sleep(2 * time.Second) // the runner syncs every 500ms: long enough to have started it wrongly
	if n := s.runCount(t); n != 0 {
		t.Fatalf("a suspended Job ran %d times", n)
	}
	if _, err := env.Kube.BatchV1().Jobs(s.ns).Patch(ctx, "suspended", "application/merge-patch+json", []byte(`{"spec":{"suspend":false}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 30*time.Second, "the resumed Job's process", func() (bool, string) {
		return len(s.runner.PIDs("Job/suspended")) == 1, ""
	})
	pid := s.runner.PIDs("Job/suspended")[0]
	if _, err := env.Kube.BatchV1().Jobs(s.ns).Patch(ctx, "suspended", "application/merge-patch+json", []byte(`{"spec":{"suspend":true}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 30*time.Second, "the suspended Job's process to stop", func() (bool, string) {
		return len(s.runner.PIDs("Job/suspended")) == 0 && !alive(pid), ""
	})

	// A Deployment whose worker crashes at once is restarted, with a back-off.
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "crashing", Namespace: s.ns}, Spec: appsv1.DeploymentSpec{
		Replicas: ptr.To[int32](1), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "x"}}, Template: s.template("1")}}
	d.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyAlways
	before := len(s.runner.Started())
	if _, err := env.Kube.AppsV1().Deployments(s.ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 30*time.Second, "three starts of the crashing Deployment's worker", func() (bool, string) {
		return len(s.runner.Started())-before >= 3, fmt.Sprint(len(s.runner.Started()) - before)
	})
	if _, err := env.Kube.AppsV1().Deployments(s.ns).Patch(ctx, "crashing", "application/merge-patch+json", []byte(`{"spec":{"replicas":0}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	settled := len(s.runner.Started())
	time.Sleep(3 * time.Second) // past the longest back-off so far
	if got := len(s.runner.Started()); got != settled || len(s.runner.PIDs("Deployment/crashing")) != 0 {
		t.Errorf("scaled to 0, the Deployment's worker still starts (%d starts, then %d)", settled, got)
	}
}

func alive(pid int) bool {
	_, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
	return err == nil
}
