// Command models-schema prints the OpenAPI v2 definitions of the kannika.io
// types (from generated/openapi) as JSON. scripts/generate.sh feeds it to
// applyconfiguration-gen, which needs a typed schema to generate Extract
// functions and apply configurations that merge list-maps correctly.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"k8s.io/kube-openapi/pkg/common"
	"k8s.io/kube-openapi/pkg/validation/spec"

	"github.com/kannika/armory/generated/openapi"
)

func main() {
	if err := printSchema(); err != nil {
		fmt.Fprintf(os.Stderr, "models-schema: %v\n", err)
		os.Exit(1)
	}
}

func printSchema() error {
	ref := func(name string) spec.Ref {
		return spec.MustCreateRef("#/definitions/" + modelName(name))
	}
	defs := openapi.GetOpenAPIDefinitions(ref)
	schemas := make(map[string]spec.Schema, len(defs))
	for name, def := range defs {
		schema := def.Schema
		// Types with a hand-written OpenAPI v3 schema also carry a v2 one;
		// structured-merge-diff wants v2.
		if v2, ok := def.Schema.Extensions[common.ExtensionV2Schema].(spec.Schema); ok {
			schema = v2
		}
		schemas[modelName(name)] = schema
	}
	out, err := json.Marshal(&spec.Swagger{SwaggerProps: spec.SwaggerProps{
		Swagger:     "2.0",
		Info:        &spec.Info{InfoProps: spec.InfoProps{Title: "Armory", Version: "unversioned"}},
		Definitions: schemas,
	}})
	if err != nil {
		return fmt.Errorf("marshal schema: %w", err)
	}
	_, err = os.Stdout.Write(out)
	return err
}

// modelName turns a Go package path name ("k8s.io/apimachinery/pkg/apis/meta/v1.Time")
// into an OpenAPI model name ("io.k8s.apimachinery.pkg.apis.meta.v1.Time").
// Names that are already model names (no slash) are kept.
func modelName(name string) string {
	parts := strings.Split(name, "/")
	if len(parts) == 1 {
		return name
	}
	host := strings.Split(parts[0], ".")
	for i, j := 0, len(host)-1; i < j; i, j = i+1, j-1 {
		host[i], host[j] = host[j], host[i]
	}
	parts[0] = strings.Join(host, ".")
	return strings.Join(parts, ".")
}
