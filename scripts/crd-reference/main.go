// Command crd-reference writes docs/reference.md from the generated CRDs:
// every field of every Armory resource with its type, default and the
// validation the API server applies. `make generate` runs it, so the
// reference cannot drift from the CRDs (`make verify` fails when it does).
//
//	go run ./scripts/crd-reference deploy/crds > docs/reference.md
package main

import (
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"
)

// The order a reader meets the kinds in.
var kindOrder = []string{"EventHub", "Credentials", "Storage", "Backup", "Restore"}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: crd-reference CRD_FOLDER")
		os.Exit(2)
	}
	if err := write(os.Stdout, os.Args[1]); err != nil {
		fmt.Fprintf(os.Stderr, "crd-reference: %v\n", err)
		os.Exit(1)
	}
}

func write(w io.Writer, dir string) error {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return err
	}
	crds := map[string]*apiextensionsv1.CustomResourceDefinition{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := yaml.UnmarshalStrict(data, crd); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		crds[crd.Spec.Names.Kind] = crd
	}
	fmt.Fprint(w, `# Resource reference

Every field of every Armory resource (API group `+"`kannika.io`"+`, version
`+"`v1alpha`"+`): its type, its default, and the validation the API server applies
when you apply it. Generated from the CRDs in `+"`deploy/crds/`"+` by
`+"`scripts/crd-reference`"+` (`+"`make generate`"+`); `+"`make verify`"+` fails when it is stale.
`+"`kubectl explain <kind>.spec`"+` shows the same descriptions.

Settings the schema cannot check (a rollover size above zero, Kafka
properties, whether a bucket or topic exists) are checked by the controller
and the workers; their messages are in [troubleshooting](troubleshooting.md).
`)
	for _, kind := range kindOrder {
		crd, ok := crds[kind]
		if !ok {
			return fmt.Errorf("no CRD for kind %s in %s", kind, dir)
		}
		delete(crds, kind)
		if err := writeKind(w, crd); err != nil {
			return err
		}
	}
	if len(crds) > 0 {
		return fmt.Errorf("kinds not in the reference's order: %v", slices.Sorted(maps.Keys(crds)))
	}
	return nil
}

func writeKind(w io.Writer, crd *apiextensionsv1.CustomResourceDefinition) error {
	if len(crd.Spec.Versions) != 1 {
		return fmt.Errorf("%s: %d versions; the reference knows one", crd.Name, len(crd.Spec.Versions))
	}
	v := crd.Spec.Versions[0]
	root := v.Schema.OpenAPIV3Schema
	names := crd.Spec.Names
	fmt.Fprintf(w, "\n## %s\n\n", names.Kind)
	if d := root.Description; d != "" {
		fmt.Fprintf(w, "%s\n\n", oneLine(d))
	}
	fmt.Fprintf(w, "`kubectl get %s`", names.Plural)
	if len(names.ShortNames) > 0 {
		fmt.Fprintf(w, " (short: `%s`)", strings.Join(names.ShortNames, "`, `"))
	}
	fmt.Fprintf(w, "; namespaced: %v.", crd.Spec.Scope == apiextensionsv1.NamespaceScoped)
	if len(v.AdditionalPrinterColumns) > 0 {
		var cols []string
		for _, c := range v.AdditionalPrinterColumns {
			col := strings.ToUpper(c.Name)
			if c.Priority > 0 {
				col += " (-o wide)"
			}
			cols = append(cols, fmt.Sprintf("%s `%s`", col, c.JSONPath))
		}
		fmt.Fprintf(w, " Columns: %s.", strings.Join(cols, ", "))
	}
	fmt.Fprintln(w)
	if rules := validations(root); rules != "" {
		fmt.Fprintf(w, "\nRules on the whole object: %s\n", rules)
	}
	for _, part := range []string{"spec", "status"} {
		s, ok := root.Properties[part]
		if !ok {
			continue
		}
		fmt.Fprintf(w, "\n### %s.%s\n\n", names.Kind, part)
		if part == "status" {
			fmt.Fprintf(w, "Written by the controller and the workers; read-only for users.\n\n")
		}
		fmt.Fprintln(w, "| field | type | default | validation | description |")
		fmt.Fprintln(w, "|---|---|---|---|---|")
		if rules := validations(&s); rules != "" {
			fmt.Fprintf(w, "| `%s` | object | | %s | |\n", part, rules)
		}
		walk(w, part, &s)
	}
	return nil
}

// walk writes one row per field under s, depth first, in name order.
func walk(w io.Writer, path string, s *apiextensionsv1.JSONSchemaProps) {
	for _, name := range slices.Sorted(maps.Keys(s.Properties)) {
		p := s.Properties[name]
		field := path + "." + name
		if isConditions(&p) {
			fmt.Fprintf(w, "| `%s` | array of [Condition](https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/object-meta/#Condition) | | one item per `type` | %s |\n", field, cell(oneLine(p.Description)))
			continue
		}
		row(w, field, &p, slices.Contains(s.Required, name))
		switch {
		case p.Type == "object" && len(p.Properties) > 0:
			walk(w, field, &p)
		case p.Type == "array" && p.Items != nil && p.Items.Schema != nil && len(p.Items.Schema.Properties) > 0:
			walk(w, field+"[]", p.Items.Schema)
		}
	}
}

// isConditions: the standard metav1.Condition list, described once by
// Kubernetes rather than field by field here.
func isConditions(p *apiextensionsv1.JSONSchemaProps) bool {
	if p.Type != "array" || p.Items == nil || p.Items.Schema == nil {
		return false
	}
	_, ok := p.Items.Schema.Properties["lastTransitionTime"]
	return ok
}

func row(w io.Writer, field string, p *apiextensionsv1.JSONSchemaProps, required bool) {
	var checks []string
	if required {
		checks = append(checks, "required")
	}
	if c := validations(p); c != "" {
		checks = append(checks, c)
	}
	if p.Type == "array" && p.Items != nil && p.Items.Schema != nil {
		if c := validations(p.Items.Schema); c != "" {
			checks = append(checks, "each item: "+c)
		}
	}
	def := ""
	if p.Default != nil {
		def = "`" + string(p.Default.Raw) + "`"
	}
	fmt.Fprintf(w, "| `%s` | %s | %s | %s | %s |\n", field, typeOf(p), def, cell(strings.Join(checks, "; ")), cell(oneLine(p.Description)))
}

// quantityPattern is the pattern controller-gen writes for a
// resource.Quantity.
const quantityPattern = `^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$`

func typeOf(p *apiextensionsv1.JSONSchemaProps) string {
	switch {
	case p.XIntOrString && p.Pattern == quantityPattern:
		return "quantity"
	case p.XIntOrString:
		return "integer or string"
	case p.Type == "array" && p.Items != nil && p.Items.Schema != nil:
		return "array of " + typeOf(p.Items.Schema)
	case p.Type == "object" && p.AdditionalProperties != nil && p.AdditionalProperties.Schema != nil:
		return "map of " + typeOf(p.AdditionalProperties.Schema)
	case p.Format != "" && p.Type == "string":
		return "string (" + p.Format + ")"
	case p.Type == "":
		return "any"
	}
	return p.Type
}

// validations lists what the API server checks on one schema node.
func validations(p *apiextensionsv1.JSONSchemaProps) string {
	var out []string
	if len(p.Enum) > 0 {
		var vals []string
		for _, e := range p.Enum {
			vals = append(vals, "`"+strings.Trim(string(e.Raw), `"`)+"`")
		}
		out = append(out, "one of "+strings.Join(vals, ", "))
	}
	switch {
	case p.Pattern == quantityPattern:
		out = append(out, "a Kubernetes quantity, e.g. `64Mi`")
	case p.Pattern != "":
		out = append(out, "matches `"+p.Pattern+"`")
	}
	bound := func(what string, min, max *int64) {
		switch {
		case min != nil && max != nil:
			out = append(out, fmt.Sprintf("%s %d to %d", what, *min, *max))
		case min != nil:
			out = append(out, fmt.Sprintf("%s at least %d", what, *min))
		case max != nil:
			out = append(out, fmt.Sprintf("%s at most %d", what, *max))
		}
	}
	bound("length", p.MinLength, p.MaxLength)
	bound("items", p.MinItems, p.MaxItems)
	bound("keys", p.MinProperties, p.MaxProperties)
	if p.Minimum != nil {
		out = append(out, fmt.Sprintf("≥ %v", *p.Minimum))
	}
	if p.Maximum != nil {
		out = append(out, fmt.Sprintf("≤ %v", *p.Maximum))
	}
	if p.XListType != nil && *p.XListType == "map" {
		out = append(out, "one item per `"+strings.Join(p.XListMapKeys, "`, `")+"`")
	}
	if p.XListType != nil && *p.XListType == "set" {
		out = append(out, "no duplicates")
	}
	for _, r := range p.XValidations {
		msg := r.Message
		if msg == "" {
			msg = "`" + r.Rule + "`"
		}
		out = append(out, msg)
	}
	return strings.Join(out, "; ")
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// cell escapes what would break a Markdown table cell.
func cell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
