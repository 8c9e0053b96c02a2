// Package phase writes the human message that the STATUS column of
// `kubectl get` shows for a phase: an emoji, the phase, and a detail.
package phase

import (
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	applymetav1 "k8s.io/client-go/applyconfigurations/meta/v1"

	"github.com/kannika/armory/apis/kannika/v1alpha"
)

var emoji = map[v1alpha.Phase]string{
	v1alpha.PhaseDraft:        "📝",
	v1alpha.PhaseReady:        "🌈",
	v1alpha.PhaseStreaming:    "🚀",
	v1alpha.PhasePaused:       "💤",
	v1alpha.PhaseFailed:       "💥",
	v1alpha.PhaseInvalid:      "🚫",
	v1alpha.PhaseInitializing: "⏳",
	v1alpha.PhaseRestoring:    "🚀",
	v1alpha.PhaseDone:         "✅",
}

// Message is "<emoji> <phase>", followed by ": <detail>" when there is one:
// "🚀 Streaming", "💥 Failed: spec.source: EventHub ... not found ...".
func Message(p v1alpha.Phase, detail string) string {
	m := emoji[p] + " " + string(p)
	if detail != "" {
		m += ": " + detail
	}
	return m
}

// Details joins the first of several problems with a count of the others,
// which the resource's conditions list: the STATUS column stays one line.
func Details(problems []string) string {
	switch len(problems) {
	case 0:
		return ""
	case 1:
		return problems[0]
	}
	return fmt.Sprintf("%s (and %d more: see kubectl describe)", strings.TrimSuffix(problems[0], "."), len(problems)-1)
}

// ConditionsApply turns conditions into apply configurations for a
// server-side apply of a status.
func ConditionsApply(conds []metav1.Condition) []*applymetav1.ConditionApplyConfiguration {
	out := make([]*applymetav1.ConditionApplyConfiguration, len(conds))
	for i, c := range conds {
		out[i] = applymetav1.Condition().
			WithType(c.Type).WithStatus(c.Status).WithReason(c.Reason).WithMessage(c.Message).
			WithObservedGeneration(c.ObservedGeneration).WithLastTransitionTime(c.LastTransitionTime)
	}
	return out
}

// maxConditionMessage keeps a condition's message far below the API
// server's 32 KiB limit on it, which would refuse the whole status write.
const maxConditionMessage = 8 << 10

// Summary joins problems for a condition's message, as many as fit in a
// bounded message, then says how many more there are and where they all
// are: "a; b; c; and 997 more (every one is in status.streams)".
func Summary(problems []string, where string) string {
	var b strings.Builder
	for i, p := range problems {
		if b.Len()+len(p) > maxConditionMessage {
			fmt.Fprintf(&b, "; and %d more (every one is in %s)", len(problems)-i, where)
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(p)
	}
	return b.String()
}
