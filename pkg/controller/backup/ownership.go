package backup

import (
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kannika/armory/pkg/controller/refs"
)

// ClashError: an object of the name a Backup or Restore needs exists and
// is controlled by something else. Ownership is the controller reference
// only: a label says nothing (anyone can write one), and an object that is
// not ours is never updated, adopted or bound to.
type ClashError struct {
	Kind, Name, Namespace string
	Owner                 string // "Backup" or "Restore"
}

func (e *ClashError) Error() string {
	return fmt.Sprintf("metadata.name: a %s %q already exists in namespace %q and does not belong to this %s; delete or rename it",
		e.Kind, e.Name, e.Namespace, e.Owner)
}

// ReasonNameConflict is the status reason of a ClashError.
const ReasonNameConflict = "NameConflict"

// ClashRecheck is how often a Backup or Restore with a name clash looks
// again: the clashing object may not be in the caches (no label), so its
// removal sends no event.
const ClashRecheck = 10 * time.Second

// HasClash reports whether problems include a name clash.
func HasClash(problems []refs.Problem) bool {
	for _, p := range problems {
		if p.Reason == ReasonNameConflict {
			return true
		}
	}
	return false
}

// checkOwned returns a ClashError unless existing has the controller
// reference desired was built with.
func checkOwned(kind string, existing, desired metav1.Object) error {
	want := metav1.GetControllerOfNoCopy(desired)
	got := metav1.GetControllerOfNoCopy(existing)
	if want != nil && got != nil && got.UID == want.UID {
		return nil
	}
	owner := "owner"
	if want != nil {
		owner = want.Kind
	}
	return &ClashError{Kind: kind, Name: existing.GetName(), Namespace: existing.GetNamespace(), Owner: owner}
}
