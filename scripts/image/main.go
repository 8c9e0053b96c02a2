// Command image writes Armory's container image as a tarball, without a
// container daemon: one layer holding a static armory, CA certificates and a
// passwd entry for the non-root user, on an empty base (no shell, no package
// manager). `make image` runs it; `docker load -i` and
// `kind load image-archive` read what it writes, and `crane push` uploads it.
package main

import (
	"archive/tar"
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// The user the image runs as: distroless's "nonroot", the UID the worker
// pods' security context also sets.
const uid = 65532

func main() {
	binary := flag.String("binary", "", "the static armory binary to put in the image")
	certs := flag.String("ca-certificates", "/etc/ssl/certs/ca-certificates.crt", "the CA bundle to put in the image")
	ref := flag.String("tag", "ghcr.io/kannika/armory:dev", "the image reference written into the tarball")
	out := flag.String("o", "bin/armory-image.tar", "the tarball to write")
	version := flag.String("version", "dev", "org.opencontainers.image.version")
	revision := flag.String("revision", "unknown", "org.opencontainers.image.revision")
	arch := flag.String("arch", "amd64", "the binary's architecture")
	flag.Parse()
	if err := write(*binary, *certs, *ref, *out, *version, *revision, *arch); err != nil {
		fmt.Fprintf(os.Stderr, "image: %v\n", err)
		os.Exit(1)
	}
}

func write(binary, certs, ref, out, version, revision, arch string) error {
	bin, err := os.ReadFile(binary)
	if err != nil {
		return fmt.Errorf("the armory binary (--binary): %w", err)
	}
	ca, err := os.ReadFile(certs)
	if err != nil {
		return fmt.Errorf("the CA certificates (--ca-certificates; Debian: apt-get install ca-certificates): %w", err)
	}
	layerTar, err := rootfs(bin, ca)
	if err != nil {
		return err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(layerTar)), nil })
	if err != nil {
		return err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cfg.Architecture, cfg.OS = arch, "linux"
	cfg.Created = v1.Time{Time: time.Unix(0, 0).UTC()} // reproducible
	cfg.Config = v1.Config{
		Entrypoint: []string{"/usr/local/bin/armory"},
		// The Deployments and Jobs name the command "armory": the runtime
		// finds it on this PATH.
		Env:        []string{"PATH=/usr/local/bin"},
		User:       fmt.Sprintf("%d:%d", uid, uid),
		WorkingDir: "/",
		Labels: map[string]string{
			"org.opencontainers.image.title":       "armory",
			"org.opencontainers.image.description": "Kubernetes operator that backs up Kafka topics to object storage and restores them",
			"org.opencontainers.image.source":      "https://github.com/kannika/armory",
			"org.opencontainers.image.version":     version,
			"org.opencontainers.image.revision":    revision,
			"org.opencontainers.image.licenses":    "Apache-2.0",
		},
	}
	if img, err = mutate.ConfigFile(img, cfg); err != nil {
		return err
	}
	tag, err := name.NewTag(ref)
	if err != nil {
		return fmt.Errorf("--tag %q: %w", ref, err)
	}
	return tarball.WriteToFile(out, tag, img)
}

// rootfs is the image's only layer.
func rootfs(bin, ca []byte) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	epoch := time.Unix(0, 0).UTC()
	dir := func(path string, mode int64) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: path, Mode: mode, ModTime: epoch})
	}
	file := func(path string, mode int64, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: path, Mode: mode, Size: int64(len(data)), ModTime: epoch}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	for _, d := range []string{"etc/", "etc/ssl/", "etc/ssl/certs/", "usr/", "usr/local/", "usr/local/bin/"} {
		if err := dir(d, 0o755); err != nil {
			return nil, err
		}
	}
	// /tmp: the worker pods mount an emptyDir there; a bare `docker run`
	// has one too.
	if err := dir("tmp/", 0o1777); err != nil {
		return nil, err
	}
	files := []struct {
		path string
		mode int64
		data []byte
	}{
		{"etc/passwd", 0o644, fmt.Appendf(nil, "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:/home/nonroot:/sbin/nologin\n", uid, uid)},
		{"etc/group", 0o644, fmt.Appendf(nil, "root:x:0:\nnonroot:x:%d:\n", uid)},
		{"etc/ssl/certs/ca-certificates.crt", 0o644, ca},
		{"usr/local/bin/armory", 0o755, bin},
	}
	for _, f := range files {
		if err := file(f.path, f.mode, f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
