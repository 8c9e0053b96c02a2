package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kannika/armory/pkg/layout"
)

// volumeFaults backs up to a volume of its own (a tmpfs) that, in turns,
// fills up (ENOSPC) and is remounted read-only (EROFS), each for a few
// seconds while records keep coming. Whenever a fault lasts, the Backup's
// status must say so: a user runs kubectl get backups, not the worker's log.
func (c *chaos) volumeFaults() row {
	r := row{scenario: "volume faults", faults: map[string]int{"disk full": 0, "read-only remount": 0, "status said so": 0}}
	start := time.Now()
	vol := filepath.Join(c.dir, "volume-faults")
	if r.err = os.MkdirAll(vol, 0o755); r.err != nil {
		return r
	}
	// Large enough for the backup; the filler takes the rest when the disk
	// is to be full.
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=512m", "armory-chaos", vol).CombinedOutput(); err != nil {
		r.err = fmt.Errorf("the volume faults need a tmpfs of their own (run as root, with mount allowed): mount: %v: %s", err, out)
		return r
	}
	defer func() {
		_ = exec.Command("mount", "-o", "remount,rw", vol).Run()
		if out, err := exec.Command("umount", vol).CombinedOutput(); err != nil {
			fmt.Printf("umount %s: %v: %s\n", vol, err, out)
		}
	}()
	cluster, err := newCluster()
	if err != nil {
		r.err = err
		return r
	}
	defer cluster.Close()
	const ns = "chaos-volume"
	if r.err = c.backupIn(ns, cluster.ListenAddrs(), "volume: {capacity: 1Gi}"); r.err != nil {
		return r
	}
	p, err := c.produce(cluster.ListenAddrs())
	if err != nil {
		r.err = err
		return r
	}
	w, err := c.startWorker(ns, vol, "volume.log", "--status-interval", "1s")
	if err != nil {
		r.err = err
		return r
	}
	waitStreams(w) // faults start once the streams run
	filler := filepath.Join(vol, "chaos-filler")
	deadline := time.Now().Add(c.volumeFor)
	for i := 0; (time.Now().Before(deadline) || i < 2) && r.err == nil; i++ { // both kinds, however short the run
		time.Sleep(time.Duration(500+c.intn(1000)) * time.Millisecond)
		var undo func() error
		var kind, says string
		if i%2 == 0 {
			kind, says = "disk full", "no space left on device"
			if r.err = fill(filler); r.err == nil {
				undo = func() error { return os.Remove(filler) }
			}
		} else {
			kind, says = "read-only remount", "read-only file system"
			if r.err = remount(vol, "ro"); r.err == nil {
				undo = func() error { return remount(vol, "rw") }
			}
		}
		if r.err != nil {
			break
		}
		r.faults[kind]++
		// The fault lasts until the status shows it (bounded), then a
		// little longer.
		if msg := c.statusSays(ns, says, 30*time.Second); msg != "" {
			r.faults["status said so"]++
			if r.faults[kind] == 1 {
				r.notes = append(r.notes, fmt.Sprintf("%s: the stream's status message was `%s`", kind, msg))
			}
		} else {
			r.err = fmt.Errorf("%s for 30 s and no stream's status says %q", kind, says)
		}
		time.Sleep(time.Duration(c.intn(2000)) * time.Millisecond)
		r.err = errors.Join(r.err, undo())
	}
	produced, perr := p.finish()
	r.err = errors.Join(r.err, perr, w.stop())
	r.iterations = fmt.Sprintf("the backup's tmpfs filled up %d times and was remounted read-only %d times over %s of production, each time until the status said so",
		r.faults["disk full"], r.faults["read-only remount"], c.volumeFor)
	if r.err == nil {
		r.err = c.finalRun(ns, vol, nil, produced, &r)
	}
	if r.err == nil {
		r.err = c.restoreAndCheck(ns, vol, produced, &r, restoreHow{})
	}
	r.seconds = time.Since(start).Seconds()
	return r
}

// fill writes a file until the disk is full.
func fill(name string) error {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	defer f.Close()
	chunk := make([]byte, 1<<20)
	for range 1 << 12 { // 4 GiB at most
		if _, err := f.Write(chunk); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return nil
			}
			return fmt.Errorf("fill %s: %w", name, err)
		}
	}
	return fmt.Errorf("fill %s: 4 GiB written and the disk is not full", name)
}

// remount remounts dir ro or rw. A read-only remount is refused while a
// file is open for writing (EBUSY), so it is tried for a while.
func remount(dir, mode string) error {
	var out []byte
	var err error
	for range 100 {
		if out, err = exec.Command("mount", "-o", "remount,"+mode, dir).CombinedOutput(); err == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("mount -o remount,%s %s: %v: %s", mode, dir, err, out)
}

// statusSays waits until a stream of the Backup has a message containing
// says, and returns it ("" if none did in time).
func (c *chaos) statusSays(ns, says string, within time.Duration) string {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		b, err := c.env.Armory.KannikaV1alpha().Backups(ns).Get(c.ctx, "chaos", metav1.GetOptions{})
		if err == nil {
			for _, s := range b.Status.Streams {
				if strings.Contains(s.Message, says) {
					return fmt.Sprintf("%s: %s", s.State, s.Message)
				}
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return ""
}

// strayFiles is every file under dir that is not an object a backup keeps:
// a temporary file a failed write left behind, say.
func strayFiles(dir string) []string {
	var out []string
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		name := d.Name()
		if name != "topic.json" && !strings.HasSuffix(name, layout.SegmentSuffix) && !strings.HasSuffix(name, layout.GapSuffix) {
			out = append(out, path)
		}
		return nil
	})
	return out
}
