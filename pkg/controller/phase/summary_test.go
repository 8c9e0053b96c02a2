package phase

import (
	"fmt"
	"strings"
	"testing"
)

func TestSummaryIsBounded(t *testing.T) {
	var problems []string
	for i := range 1000 {
		problems = append(problems, fmt.Sprintf(`stream "team.topic-%04d": topic "team.topic-%04d" does not exist in the Kafka cluster; create it, or correct or remove the stream`, i, i))
	}
	got := Summary(problems, "status.streams")
	if len(got) > 9<<10 {
		t.Errorf("summary of 1000 problems is %d bytes", len(got))
	}
	if !strings.HasPrefix(got, problems[0]+"; "+problems[1]) || !strings.Contains(got, " more (every one is in status.streams)") {
		t.Errorf("summary = %.200q…%q", got, got[len(got)-80:])
	}
	if got := Summary(problems[:2], "x"); got != problems[0]+"; "+problems[1] {
		t.Errorf("two problems: %q", got)
	}
}
