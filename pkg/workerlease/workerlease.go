// Package workerlease names the coordination.k8s.io Lease that a worker holds
// while it runs a Backup or Restore, and tells whether it is held.
//
// The worker takes the Lease (client-go leaderelection) before it touches
// data, so exactly one worker runs a resource at a time; the controller reads
// it to know that a worker is really running.
package workerlease

import (
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
)

// Labels on every worker Lease, so the controller watches only those.
const (
	// PartOfLabel marks objects that belong to Armory.
	PartOfLabel = "app.kubernetes.io/part-of"
	PartOfValue = "armory"
	// BackupLabel names the Backup a Lease or owned object belongs to.
	BackupLabel = "kannika.io/backup"
)

// ForBackup is the name of the Lease a Backup's worker holds: the name of the
// Backup's Deployment.
func ForBackup(backup string) string { return backup + "-backup" }

// BackupLabels are the labels of a Backup's worker Lease.
func BackupLabels(backup string) map[string]string {
	return map[string]string{PartOfLabel: PartOfValue, BackupLabel: backup}
}

// Held reports whether a worker holds the Lease at now: it names a holder and
// was renewed within its duration. expires is when it stops being held unless
// renewed again; the controller looks again then.
func Held(lease *coordinationv1.Lease, now time.Time) (held bool, expires time.Time) {
	if lease == nil {
		return false, time.Time{}
	}
	s := lease.Spec
	if s.HolderIdentity == nil || *s.HolderIdentity == "" || s.RenewTime == nil || s.LeaseDurationSeconds == nil {
		return false, time.Time{}
	}
	expires = s.RenewTime.Add(time.Duration(*s.LeaseDurationSeconds) * time.Second)
	return now.Before(expires), expires
}

// RestoreLabel names the Restore a Lease or owned object belongs to.
const RestoreLabel = "kannika.io/restore"

// ForRestore is the name of the Lease a Restore's worker holds: the name of
// the Restore's Job.
func ForRestore(restore string) string { return restore + "-restore" }

// RestoreLabels are the labels of a Restore's worker Lease.
func RestoreLabels(restore string) map[string]string {
	return map[string]string{PartOfLabel: PartOfValue, RestoreLabel: restore}
}

// Exit codes of `armory worker --restore`, which the Restore's Job reads
// through its podFailurePolicy.
const (
	// ExitRestoreDone: every selected record is restored (or was already).
	ExitRestoreDone = 0
	// ExitRestorePermanent: a preflight check or an error that retrying
	// cannot fix; the status says which. The Job fails at once.
	ExitRestorePermanent = 2
	// ExitRestoreInterrupted: stopped before the end (SIGTERM, disabled,
	// Lease lost); what was committed is kept and the next run resumes. The
	// Job does not count it against its backoffLimit.
	ExitRestoreInterrupted = 3
)

// DefaultStoragePath is where the controller mounts a volume Storage in a
// worker, and where the worker looks for it.
const DefaultStoragePath = "/var/lib/armory/storage"
