package backup

import (
	"context"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	kubeinformers "k8s.io/client-go/informers"
	kubefake "k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"

	"github.com/kannika/armory/apis/kannika/v1alpha"
	armoryfake "github.com/kannika/armory/generated/clientset/versioned/fake"
	armoryinformers "github.com/kannika/armory/generated/informers/externalversions"
	"github.com/kannika/armory/pkg/controller/refs"
	"github.com/kannika/armory/pkg/workerlease"
)

// fixture is a Reconciler over fake clientsets whose informer caches hold the
// given objects.
type fixture struct {
	t        *testing.T
	kube     *kubefake.Clientset
	armory   *armoryfake.Clientset
	recorder *record.FakeRecorder
	r        *Reconciler
}

func newFixture(t *testing.T, armoryObjs, kubeObjs []runtime.Object) *fixture {
	t.Helper()
	f := &fixture{t: t, kube: kubefake.NewClientset(kubeObjs...), armory: armoryfake.NewClientset(armoryObjs...),
		recorder: record.NewFakeRecorder(100)}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ai := armoryinformers.NewSharedInformerFactory(f.armory, 0)
	ki := kubeinformers.NewSharedInformerFactory(f.kube, 0)
	f.r = &Reconciler{
		Kube: f.kube, Armory: f.armory,
		Backups: ai.Kannika().V1alpha().Backups().Lister(),
		Refs: refs.Listers{
			EventHubs:   ai.Kannika().V1alpha().EventHubs().Lister(),
			Storages:    ai.Kannika().V1alpha().Storages().Lister(),
			Credentials: ai.Kannika().V1alpha().Credentials().Lister(),
			Secrets:     ki.Core().V1().Secrets().Lister(),
		},
		Deployments:     ki.Apps().V1().Deployments().Lister(),
		ServiceAccounts: ki.Core().V1().ServiceAccounts().Lister(),
		Roles:           ki.Rbac().V1().Roles().Lister(),
		RoleBindings:    ki.Rbac().V1().RoleBindings().Lister(),
		Leases:          ki.Coordination().V1().Leases().Lister(),
		Recorder:        f.recorder,
		Clock:           clocktesting.NewFakePassiveClock(now),
		Config:          testConfig,
	}
	ai.Start(ctx.Done())
	ki.Start(ctx.Done())
	ai.WaitForCacheSync(ctx.Done())
	ki.WaitForCacheSync(ctx.Done())
	f.kube.ClearActions()
	f.armory.ClearActions()
	return f
}

func (f *fixture) sync() time.Duration {
	f.t.Helper()
	requeue, err := f.r.Sync(context.Background(), "team-a", "backup-example")
	if err != nil {
		f.t.Fatalf("Sync: %v", err)
	}
	return requeue
}

// writes lists the write actions, as "verb resource".
func writes(actions []clienttesting.Action) []string {
	var out []string
	for _, a := range actions {
		if a.GetVerb() == "list" || a.GetVerb() == "watch" || a.GetVerb() == "get" {
			continue
		}
		res := a.GetResource().Resource
		if a.GetSubresource() != "" {
			res += "/" + a.GetSubresource()
		}
		out = append(out, a.GetVerb()+" "+res)
	}
	return out
}

// refObjects are the EventHub and Storage of testBackup; resolvedRefs is what
// the Reconciler finds with only those.
func refObjects() []runtime.Object {
	r := resolvedRefs()
	return []runtime.Object{r.EventHub, r.Storage}
}

func resolvedRefs() refs.Resolved {
	r := testResolved()
	return refs.Resolved{EventHub: r.EventHub, Storage: r.Storage, Secrets: map[string]*corev1.Secret{}}
}

func TestSyncCreatesWorkerAndWritesStatus(t *testing.T) {
	b := testBackup()
	f := newFixture(t, append(refObjects(), b), nil)
	f.sync()

	got := strings.Join(writes(f.kube.Actions()), ", ")
	want := "create serviceaccounts, create roles, create rolebindings, create deployments"
	if got != want {
		t.Errorf("kube writes = %s\nwant          %s", got, want)
	}
	if got := strings.Join(writes(f.armory.Actions()), ", "); got != "patch backups/status" {
		t.Errorf("armory writes = %s, want one status patch", got)
	}
	d, err := f.kube.AppsV1().Deployments("team-a").Get(context.Background(), "backup-example-backup", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if *d.Spec.Replicas != 1 || strings.Join(d.Spec.Template.Spec.Containers[0].Command, " ") != "armory worker --backup=backup-example" {
		t.Errorf("Deployment = %d replicas, command %q", *d.Spec.Replicas, d.Spec.Template.Spec.Containers[0].Command)
	}
	stored, _ := f.armory.KannikaV1alpha().Backups("team-a").Get(context.Background(), "backup-example", metav1.GetOptions{})
	if stored.Status.Phase != v1alpha.PhaseReady || stored.Status.Message != "🌈 Ready" || stored.Status.ObservedGeneration != 1 {
		t.Errorf("status = %s %q gen %d, want Ready", stored.Status.Phase, stored.Status.Message, stored.Status.ObservedGeneration)
	}
	if e := <-f.recorder.Events; e != "Normal Ready 🌈 Ready" {
		t.Errorf("event = %q", e)
	}
}

func TestSyncOfAnUnchangedBackupWritesNothing(t *testing.T) {
	b := testBackup()
	r := resolvedRefs()
	d := NewDeployment(b, r, testConfig)
	st := ComputeStatus(b, Observed{Now: now})
	b.Status.Phase, b.Status.Message, b.Status.ObservedGeneration, b.Status.Conditions = st.Phase, st.Message, st.ObservedGeneration, st.Conditions
	f := newFixture(t, append(refObjects(), b),
		[]runtime.Object{d, NewServiceAccount(b), NewRole(b, r), NewRoleBinding(b)})
	f.sync()
	f.sync()
	if w := writes(append(f.kube.Actions(), f.armory.Actions()...)); len(w) != 0 {
		t.Errorf("syncing an unchanged Backup wrote: %v", w)
	}
	if len(f.recorder.Events) != 0 {
		t.Errorf("syncing an unchanged Backup recorded %d events", len(f.recorder.Events))
	}
}

func TestSyncScalesToZeroWhenPausedOrBroken(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*v1alpha.Backup) []runtime.Object
		phase  v1alpha.Phase
	}{
		{"paused", func(b *v1alpha.Backup) []runtime.Object { b.Spec.Enabled = ptr.To(false); return refObjects() }, v1alpha.PhasePaused},
		{"EventHub deleted", func(b *v1alpha.Backup) []runtime.Object { return refObjects()[1:] }, v1alpha.PhaseFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := testBackup()
			running := NewDeployment(testBackup(), testResolved(), testConfig)
			objs := tc.mutate(b)
			f := newFixture(t, append(objs, b), []runtime.Object{running})
			f.sync()
			d, _ := f.kube.AppsV1().Deployments("team-a").Get(context.Background(), running.Name, metav1.GetOptions{})
			if *d.Spec.Replicas != 0 {
				t.Errorf("replicas = %d, want 0", *d.Spec.Replicas)
			}
			stored, _ := f.armory.KannikaV1alpha().Backups("team-a").Get(context.Background(), "backup-example", metav1.GetOptions{})
			if stored.Status.Phase != tc.phase {
				t.Errorf("phase = %s, want %s", stored.Status.Phase, tc.phase)
			}
		})
	}
}

func TestSyncDraftDeletesTheDeployment(t *testing.T) {
	b := testBackup()
	b.Spec.Streams = nil
	f := newFixture(t, append(refObjects(), b), []runtime.Object{NewDeployment(testBackup(), testResolved(), testConfig)})
	f.sync()
	if got := strings.Join(writes(f.kube.Actions()), ", "); got != "delete deployments" {
		t.Errorf("kube writes = %s, want the Deployment deleted", got)
	}
}

func TestSyncRefusesADeploymentItDoesNotOwn(t *testing.T) {
	b := testBackup()
	foreign := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "backup-example-backup", Namespace: "team-a",
		Labels: map[string]string{workerlease.PartOfLabel: workerlease.PartOfValue}}}
	f := newFixture(t, append(refObjects(), b), []runtime.Object{foreign})
	f.sync()
	for _, w := range writes(f.kube.Actions()) {
		if strings.HasSuffix(w, "deployments") {
			t.Errorf("wrote a Deployment it does not own: %s", w)
		}
	}
	stored, _ := f.armory.KannikaV1alpha().Backups("team-a").Get(context.Background(), "backup-example", metav1.GetOptions{})
	if stored.Status.Phase != v1alpha.PhaseFailed || !strings.Contains(stored.Status.Message, `a Deployment "backup-example-backup" already exists`) {
		t.Errorf("status = %s %q", stored.Status.Phase, stored.Status.Message)
	}
}

func TestSyncStreamingUntilTheLeaseExpires(t *testing.T) {
	b := testBackup()
	lease := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: "backup-example-backup", Namespace: "team-a", Labels: workerlease.BackupLabels("backup-example")},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To("worker-pod"), LeaseDurationSeconds: ptr.To[int32](15),
			RenewTime: &metav1.MicroTime{Time: now.Add(-5 * time.Second)}},
	}
	f := newFixture(t, append(refObjects(), b), []runtime.Object{lease})
	requeue := f.sync()
	stored, _ := f.armory.KannikaV1alpha().Backups("team-a").Get(context.Background(), "backup-example", metav1.GetOptions{})
	if stored.Status.Phase != v1alpha.PhaseStreaming || stored.Status.Message != "🚀 Streaming" {
		t.Errorf("status = %s %q, want Streaming", stored.Status.Phase, stored.Status.Message)
	}
	if requeue < 10*time.Second || requeue > 11*time.Second {
		t.Errorf("requeue after %v, want just past the Lease's expiry in 10s", requeue)
	}
}
