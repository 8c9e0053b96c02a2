// Package docs holds Armory's documentation; its tests keep the pages that
// list things the code defines (metrics, messages) in step with the code.
package docs

import (
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// productSource is the text of the product's Go files (not tests).
func productSource(t *testing.T) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(filepath.Join("..", "pkg"), func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testenv" || d.Name() == "storagetest") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		data, err := os.ReadFile(path)
		files[path] = string(data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func page(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// TestMetricsPageListsEveryMetric: docs/metrics.md names each metric the
// code registers, and no other.
func TestMetricsPageListsEveryMetric(t *testing.T) {
	inCode := map[string]bool{}
	named := regexp.MustCompile(`Name:\s*"(armory_[a-z_]*[a-z])"`)
	// The workqueue metrics are named "armory_workqueue_" + what client-go asks for.
	queue := regexp.MustCompile(`p\.(?:gauge|counter|histogram)\("([a-z_]+)"`)
	for _, src := range productSource(t) {
		for _, m := range named.FindAllStringSubmatch(src, -1) {
			inCode[m[1]] = true
		}
		if strings.Contains(src, `"armory_workqueue_" + name`) {
			for _, m := range queue.FindAllStringSubmatch(src, -1) {
				inCode["armory_workqueue_"+m[1]] = true
			}
		}
	}
	if len(inCode) < 20 {
		t.Fatalf("found only %d metrics in the code: the test's patterns no longer match it", len(inCode))
	}
	inPage := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `(armory_[a-z_]+)`").FindAllStringSubmatch(page(t, "metrics.md"), -1) {
		inPage[m[1]] = true
	}
	for _, name := range slices.Sorted(maps.Keys(inCode)) {
		if !inPage[name] {
			t.Errorf("docs/metrics.md does not list %s", name)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(inPage)) {
		if !inCode[name] {
			t.Errorf("docs/metrics.md lists %s, which the code does not register", name)
		}
	}
}

// Phrases of messages that k8s.io/apimachinery's field errors write around
// Armory's own text.
var apimachineryPhrases = []string{"Required value", "Unsupported value", "supported values"}

// fixMessage matches a Go string literal that tells the user what to do: a
// clause, after "; " or ": ", that starts with a verb of fixing.
var fixMessage = regexp.MustCompile(`"((?:[^"\\\n]|\\.)*(?:; |: )(?:create|correct|set|check|remove|delete|add|restore|point|see|rename|use|lower)\b(?:[^"\\\n]|\\.)*)"`)

// verbs are the fmt verbs a message's variable parts are written with.
var verbs = regexp.MustCompile(`%[-+# 0-9.]*[a-zA-Z]`)

// TestTroubleshootingMessagesAreTheCodes: every message in
// docs/troubleshooting.md is in the code, and every message in the code that
// tells the user what to do is in the page.
func TestTroubleshootingMessagesAreTheCodes(t *testing.T) {
	src := productSource(t)
	all := strings.Join(slices.Collect(maps.Values(src)), "\n")
	doc := page(t, "troubleshooting.md")

	// The page's messages: the first cell of each table row, in backticks.
	rows := regexp.MustCompile("(?m)^\\| `([^`]+)` \\|").FindAllStringSubmatch(doc, -1)
	if len(rows) < 30 {
		t.Fatalf("only %d messages in docs/troubleshooting.md", len(rows))
	}
	for _, row := range rows {
		msg := row[1]
		if strings.HasPrefix(msg, "💥") || strings.HasPrefix(msg, "🚫") || strings.HasPrefix(msg, "💤") || strings.HasPrefix(msg, "⏳") {
			continue // the legend
		}
		for _, frag := range fragments(msg, "…") {
			if !strings.Contains(all, frag) && !isApimachinery(frag) {
				t.Errorf("docs/troubleshooting.md: %q is in no message of the code (row %q)", frag, msg)
			}
		}
	}

	// The code's messages that tell the user what to do.
	found := 0
	for _, path := range slices.Sorted(maps.Keys(src)) {
		for _, m := range fixMessage.FindAllStringSubmatch(src[path], -1) {
			found++
			for _, frag := range fragments(m[1], "%") {
				if !strings.Contains(doc, frag) {
					t.Errorf("%s: the message %q is not in docs/troubleshooting.md (missing %q)", path, m[1], frag)
					break
				}
			}
		}
	}
	if found < 25 {
		t.Errorf("found only %d messages in the code: the test's pattern no longer matches it", found)
	}
}

// fragments splits a message at its variable parts ("…" in the page, fmt
// verbs in the code) and returns the fixed text between them that is long
// enough to mean something.
func fragments(msg, sep string) []string {
	var parts []string
	if sep == "%" {
		parts = verbs.Split(msg, -1)
	} else {
		parts = strings.Split(msg, sep)
	}
	var out []string
	for _, p := range parts {
		p = strings.TrimSpace(p)
		p = strings.Trim(p, "():;,.\"' ")
		if len(p) >= 6 {
			out = append(out, p)
		}
	}
	return out
}

func isApimachinery(frag string) bool {
	for _, p := range apimachineryPhrases {
		if strings.Contains(frag, p) {
			return true
		}
	}
	return false
}

// TestCitedTestsExist: a test the documentation names as evidence exists.
func TestCitedTestsExist(t *testing.T) {
	defined := map[string]bool{}
	funcs := regexp.MustCompile(`(?m)^func (Test[A-Za-z0-9_]+)\(`)
	err := filepath.WalkDir("..", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "bin") {
			return filepath.SkipDir
		}
		if strings.HasSuffix(path, "_test.go") {
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for _, m := range funcs.FindAllStringSubmatch(string(data), -1) {
				defined[m[1]] = true
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	pages, _ := filepath.Glob("*.md")
	pages = append(pages, filepath.Join("..", "README.md"))
	cited := regexp.MustCompile("`(Test[A-Z][A-Za-z0-9_]+)`")
	n := 0
	for _, p := range pages {
		for _, m := range cited.FindAllStringSubmatch(page(t, p), -1) {
			n++
			if !defined[m[1]] {
				t.Errorf("%s cites %s, which no test defines", p, m[1])
			}
		}
	}
	if n < 10 {
		t.Errorf("only %d tests cited: the pattern no longer matches the pages", n)
	}
}
