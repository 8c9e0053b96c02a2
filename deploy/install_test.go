// Package deploy holds Armory's install manifests (kustomize, and the Helm
// chart in helm/armory); its tests render both, compare them and apply them
// to a real API server, and check the container image `make image` writes.
package deploy

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/kannika/armory/pkg/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

func root() string { return testenv.RepoRoot() }

// render returns the objects of a multi-document YAML stream, by
// "Kind namespace/name".
func render(t *testing.T, what string, stream []byte) map[string]*unstructured.Unstructured {
	t.Helper()
	out := map[string]*unstructured.Unstructured{}
	for _, doc := range strings.Split(string(stream), "\n---") {
		var obj map[string]any
		if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
			t.Fatalf("%s: %v\n%s", what, err, doc)
		}
		if obj == nil {
			continue
		}
		u := &unstructured.Unstructured{Object: obj}
		key := u.GetKind() + " " + u.GetNamespace() + "/" + u.GetName()
		if _, dup := out[key]; dup {
			t.Errorf("%s renders %s twice", what, key)
		}
		out[key] = u
	}
	return out
}

func run(t *testing.T, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = root()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return out
}

func helm(t *testing.T) string {
	t.Helper()
	return strings.TrimSpace(string(run(t, filepath.Join(root(), "scripts", "helm-binary.sh"))))
}

// TestKustomizeAndHelmRenderTheSameObjects: the two install paths the README
// offers install the same thing with the chart's default values.
func TestKustomizeAndHelmRenderTheSameObjects(t *testing.T) {
	t.Parallel()
	kustomized := render(t, "kubectl kustomize deploy/", run(t, env.KubectlPath, "kustomize", "deploy"))
	charted := render(t, "helm template", run(t, helm(t), "template", "armory", "deploy/helm/armory",
		"--namespace", "armory-system", "--include-crds"))

	// kustomize also creates the namespace; helm leaves it to --create-namespace.
	if _, ok := kustomized["Namespace /armory-system"]; !ok {
		t.Errorf("deploy/ does not create the armory-system namespace")
	}
	delete(kustomized, "Namespace /armory-system")
	for _, key := range slices.Sorted(maps.Keys(kustomized)) {
		c, ok := charted[key]
		if !ok {
			t.Errorf("the chart does not render %s", key)
			continue
		}
		if !reflect.DeepEqual(kustomized[key].Object, c.Object) {
			a, _ := yaml.Marshal(kustomized[key].Object)
			b, _ := yaml.Marshal(c.Object)
			t.Errorf("%s differs:\nkustomize:\n%s\nhelm:\n%s", key, a, b)
		}
	}
	for _, key := range slices.Sorted(maps.Keys(charted)) {
		if _, ok := kustomized[key]; !ok {
			t.Errorf("the chart renders %s, which deploy/ does not", key)
		}
	}
	for _, want := range []string{"CustomResourceDefinition /backups.kannika.io", "CustomResourceDefinition /restores.kannika.io",
		"Deployment armory-system/armory-controller", "Service armory-system/armory-controller-metrics",
		"ClusterRole /armory-controller", "ClusterRoleBinding /armory-controller"} {
		if _, ok := charted[want]; !ok {
			t.Errorf("the install has no %s", want)
		}
	}
}

// TestInstallAppliesToTheAPIServer installs Armory both ways the README
// says, one after the other, into the real API server: `helm install` (then
// `helm uninstall`), and the manifests of `kubectl apply -k deploy/`. No
// kubelet runs the controller's pods here; the objects are real. The chart is
// also rendered with a watched namespace, which binds its ClusterRole with
// RoleBindings instead, and that is applied too.
func TestInstallAppliesToTheAPIServer(t *testing.T) {
	t.Parallel()
	apply := func(what string, manifests []byte, args ...string) string {
		t.Helper()
		out, errOut, err := env.Kubectl(t, string(manifests), append([]string{"apply", "--server-side", "--force-conflicts", "-f", "-"}, args...)...)
		if err != nil {
			t.Fatalf("kubectl apply %s %v: %v\n%s%s", what, args, err, out, errOut)
		}
		return out
	}
	helmBin := helm(t)
	helmRun := func(args ...string) string {
		t.Helper()
		return string(run(t, helmBin, append(args, "--kubeconfig", env.Kubeconfig)...))
	}

	// The README's helm command, with an image of one's own.
	out := helmRun("install", "armory", "deploy/helm/armory", "--namespace", "armory-system", "--create-namespace",
		"--set", "image.repository=registry.example/armory", "--set", "image.tag=v1.2.3", "--wait=false")
	if !strings.Contains(out, "STATUS: deployed") {
		t.Fatalf("helm install: %s", out)
	}
	d, err := env.Kube.AppsV1().Deployments("armory-system").Get(context.Background(), "armory-controller", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("after helm install: %v", err)
	}
	if img := d.Spec.Template.Spec.Containers[0].Image; img != "registry.example/armory:v1.2.3" {
		t.Errorf("helm install's controller image = %s", img)
	}
	if _, err := env.Kube.RbacV1().ClusterRoleBindings().Get(context.Background(), "armory-controller", metav1.GetOptions{}); err != nil {
		t.Errorf("after helm install: %v", err)
	}
	helmRun("uninstall", "armory", "--namespace", "armory-system")

	// kubectl apply -k deploy/: the same manifests, the namespace first.
	kustomized := run(t, env.KubectlPath, "kustomize", "deploy")
	out = apply("deploy/", ordered(t, kustomized))
	for _, want := range []string{"customresourcedefinition.apiextensions.k8s.io/backups.kannika.io serverside-applied",
		"namespace/armory-system serverside-applied", "clusterrole.rbac.authorization.k8s.io/armory-controller serverside-applied",
		"serviceaccount/armory-controller serverside-applied", "deployment.apps/armory-controller serverside-applied",
		"service/armory-controller-metrics serverside-applied"} {
		if !strings.Contains(out, want) {
			t.Errorf("kubectl apply of deploy/ did not say %q:\n%s", want, out)
		}
	}

	if _, errOut, err := env.Kubectl(t, "", "create", "namespace", "team-a"); err != nil {
		t.Fatal(errOut)
	}
	charted := run(t, helmBin, "template", "armory", "deploy/helm/armory", "--namespace", "armory-system",
		"--set", "watchNamespace=team-a", "--set", "image.tag=v9.9.9")
	objs := render(t, "helm template", charted)
	if _, ok := objs["ClusterRoleBinding /armory-controller"]; ok {
		t.Errorf("with watchNamespace set, the chart still binds its ClusterRole cluster-wide")
	}
	for _, want := range []string{"RoleBinding team-a/armory-controller-cluster-role", "RoleBinding armory-system/armory-controller-cluster-role"} {
		if _, ok := objs[want]; !ok {
			t.Errorf("with watchNamespace set, the chart has no %s", want)
		}
	}
	dep := objs["Deployment armory-system/armory-controller"]
	c, _, _ := unstructured.NestedSlice(dep.Object, "spec", "template", "spec", "containers")
	container, _ := c[0].(map[string]any)
	if args, _ := container["args"].([]any); !containsAll(args, "--namespace=team-a") || container["image"] != "ghcr.io/kannika/armory:v9.9.9" {
		t.Errorf("the chart's controller: image %v, args %v; want v9.9.9 watching team-a", container["image"], container["args"])
	}
	out = apply("the chart watching team-a", ordered(t, charted), "--dry-run=server")
	if !strings.Contains(out, "rolebinding.rbac.authorization.k8s.io/armory-controller-cluster-role serverside-applied (server dry run)") {
		t.Errorf("the chart's RoleBindings were not accepted:\n%s", out)
	}
}

// ordered returns a manifest stream with Namespaces first, then the rest by
// kind and name, so what goes in a namespace comes after it.
func ordered(t *testing.T, stream []byte) []byte {
	t.Helper()
	objs := render(t, "install", stream)
	keys := slices.Sorted(maps.Keys(objs))
	sort.SliceStable(keys, func(i, j int) bool {
		return objs[keys[i]].GetKind() == "Namespace" && objs[keys[j]].GetKind() != "Namespace"
	})
	var out []byte
	for _, key := range keys {
		data, _ := yaml.Marshal(objs[key].Object)
		out = append(append(out, data...), "\n---\n"...)
	}
	return out
}

// TestImage builds the image as `make image` does and checks what a cluster
// would run: the entrypoint, a non-root user, OCI labels, CA certificates, a
// static binary that runs, and no shell.
func TestImage(t *testing.T) {
	t.Parallel()
	tarPath := filepath.Join(t.TempDir(), "armory-image.tar")
	run(t, "make", "--no-print-directory", "image", "IMAGE_TAR="+tarPath, "IMAGE=example.test/armory:t1", "VERSION=v0.0.0-test")

	files := readTar(t, tarPath)
	var manifest []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	if err := json.Unmarshal(files["manifest.json"], &manifest); err != nil || len(manifest) != 1 {
		t.Fatalf("manifest.json: %v %s", err, files["manifest.json"])
	}
	m := manifest[0]
	if !reflect.DeepEqual(m.RepoTags, []string{"example.test/armory:t1"}) || len(m.Layers) != 1 {
		t.Errorf("tags %v, layers %v; want the tag given and one layer", m.RepoTags, m.Layers)
	}
	var cfg struct {
		Architecture, OS string
		Config           struct {
			Entrypoint []string
			User       string
			Env        []string
			Labels     map[string]string
		}
	}
	if err := json.Unmarshal(files[m.Config], &cfg); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg.Config.Entrypoint, []string{"/usr/local/bin/armory"}) || cfg.Config.User != "65532:65532" || cfg.OS != "linux" {
		t.Errorf("config: entrypoint %v, user %q, os %q; want /usr/local/bin/armory as 65532:65532 on linux", cfg.Config.Entrypoint, cfg.Config.User, cfg.OS)
	}
	if !containsAll(anySlice(cfg.Config.Env), "PATH=/usr/local/bin") {
		t.Errorf("env %v: the pods' command `armory` must be on PATH", cfg.Config.Env)
	}
	for _, label := range []string{"org.opencontainers.image.title", "org.opencontainers.image.source", "org.opencontainers.image.revision", "org.opencontainers.image.licenses"} {
		if cfg.Config.Labels[label] == "" {
			t.Errorf("no OCI label %s", label)
		}
	}
	if got := cfg.Config.Labels["org.opencontainers.image.version"]; got != "v0.0.0-test" {
		t.Errorf("version label %q", got)
	}

	gz, err := gzip.NewReader(bytes.NewReader(files[m.Layers[0]]))
	if err != nil {
		t.Fatal(err)
	}
	layer := readTarStream(t, gz)
	for _, want := range []string{"usr/local/bin/armory", "etc/ssl/certs/ca-certificates.crt", "etc/passwd"} {
		if _, ok := layer[want]; !ok {
			t.Errorf("the image has no /%s", want)
		}
	}
	for name := range layer {
		switch filepath.Base(name) {
		case "sh", "bash", "ash", "dash", "busybox", "zsh":
			t.Errorf("the image has a shell: /%s", name)
		}
	}
	bin := filepath.Join(t.TempDir(), "armory")
	if err := os.WriteFile(bin, layer["usr/local/bin/armory"], 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("/usr/local/bin/armory is dynamically linked: it would not run on an empty base")
		}
	}
	f.Close()
	if out := string(run(t, bin, "--version")); !strings.Contains(out, "v0.0.0-test") {
		t.Errorf("armory --version in the image printed %q", out)
	}
}

func readTar(t *testing.T, path string) map[string][]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return readTarStream(t, f)
}

func readTarStream(t *testing.T, r io.Reader) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out[strings.TrimPrefix(h.Name, "./")] = data
	}
}

func containsAll(list []any, want ...string) bool {
	have := map[string]bool{}
	for _, v := range list {
		if s, ok := v.(string); ok {
			have[s] = true
		}
	}
	for _, w := range want {
		if !have[w] {
			return false
		}
	}
	return true
}

func anySlice(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}
