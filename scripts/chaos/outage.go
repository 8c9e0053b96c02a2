package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kannika/armory/apis/kannika/v1alpha"
	"github.com/kannika/armory/pkg/segment"
)

// apiProxy stands between Armory's processes and the API server. Down, it
// closes its listener and every connection through it, so that clients get
// "connection refused", as they do while kube-apiserver is stopped; up, it
// listens on the same address again. etcd keeps every object meanwhile, as
// it does when the API server restarts.
type apiProxy struct {
	addr, target string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]bool
}

func newAPIProxy(target string) (*apiProxy, error) {
	p := &apiProxy{target: target, conns: map[net.Conn]bool{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p.addr = ln.Addr().String()
	p.serve(ln)
	return p, nil
}

func (p *apiProxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return // down
			}
			go p.pipe(c)
		}
	}()
}

func (p *apiProxy) pipe(c net.Conn) {
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	if p.ln == nil { // went down meanwhile
		p.mu.Unlock()
		c.Close()
		up.Close()
		return
	}
	p.conns[c], p.conns[up] = true, true
	p.mu.Unlock()
	go func() { _, _ = io.Copy(up, c); up.Close() }()
	_, _ = io.Copy(c, up)
	c.Close()
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, up)
	p.mu.Unlock()
}

// down stops the API server, as far as the clients can tell.
func (p *apiProxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

// up starts it again, on the same address.
func (p *apiProxy) up() error {
	var err error
	for range 100 { // the port is ours, but may linger a moment
		var ln net.Listener
		if ln, err = net.Listen("tcp", p.addr); err == nil {
			p.serve(ln)
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("listen on %s again: %w", p.addr, err)
}

func (p *apiProxy) close() { p.down() }

// apiServerThroughProxy starts a proxy in front of the API server and
// writes a copy of the admin kubeconfig, named name, that reaches it
// through the proxy.
func (c *chaos) apiServerThroughProxy(name string) (*apiProxy, string, error) {
	cfg, err := clientcmd.LoadFromFile(c.env.Kubeconfig)
	if err != nil {
		return nil, "", err
	}
	var proxy *apiProxy
	for _, cluster := range cfg.Clusters {
		u, err := url.Parse(cluster.Server)
		if err != nil {
			return nil, "", err
		}
		if proxy == nil {
			if proxy, err = newAPIProxy(u.Host); err != nil {
				return nil, "", err
			}
		}
		u.Host = proxy.addr
		cluster.Server = u.String()
	}
	if proxy == nil {
		return nil, "", errors.New("the admin kubeconfig names no cluster")
	}
	path := filepath.Join(c.dir, name)
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		proxy.close()
		return nil, "", err
	}
	return proxy, path, nil
}

// supervisor restarts a process when it exits, as the kubelet does: always
// for a Deployment's pod, only on failure for a Job's, after a backoff that
// doubles (1 s, 2 s, 4 s, then 8 s at most: the kubelet's 10 s to 5 min,
// scaled down).
type supervisor struct {
	name  string
	start func(life int) (*worker, error)
	// always restarts on exit 0 too (a Deployment); else exit 0 ends it.
	always bool

	mu       sync.Mutex
	exits    []time.Time
	lastCode int
	stopping chan struct{}
	done     chan struct{}
	err      error
}

func (s *supervisor) run() {
	s.stopping, s.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(s.done)
		backoff := time.Second
		for life := 0; ; life++ {
			w, err := s.start(life)
			if err != nil {
				s.err = err
				return
			}
			select {
			case <-s.stopping:
				s.err = w.stop()
				return
			case <-w.done:
			}
			s.mu.Lock()
			s.exits = append(s.exits, time.Now())
			s.lastCode = w.cmd.ProcessState.ExitCode()
			s.mu.Unlock()
			if s.lastCode == 0 && !s.always {
				return
			}
			select {
			case <-s.stopping:
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 8*time.Second)
		}
	}()
}

// stop ends the process it runs (SIGTERM) and the restarts.
func (s *supervisor) stop() error {
	select {
	case <-s.done:
	default:
		close(s.stopping)
		<-s.done
	}
	return s.err
}

// firstExitAfter is when the process first exited after t.
func (s *supervisor) firstExitAfter(t time.Time) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.exits {
		if e.After(t) {
			return e, true
		}
	}
	return time.Time{}, false
}

// exitedBetween counts the exits in [from, to].
func (s *supervisor) exitedBetween(from, to time.Time) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, t := range s.exits {
		if !t.Before(from) && !t.After(to) {
			n++
		}
	}
	return n
}

// apiOutage runs the controller, a Backup's worker (under production) and a
// Restore's worker through a proxy that takes the API server away for
// o.outage. Each process exits once it cannot renew its Lease (its writing
// stops with it), a supervisor restarts it as the kubelet would, and after
// the outage the statuses must catch up: the Backup streaming and uploading
// again, the Restore done with every record.
func (c *chaos) apiOutage() row {
	r := row{scenario: "API-server outage", faults: map[string]int{"outage": 0, "controller restarts": 0, "backup worker restarts": 0, "restore worker restarts": 0}}
	start := time.Now()
	proxy, kubeconfig, err := c.apiServerThroughProxy("kubeconfig-outage")
	if err != nil {
		r.err = err
		return r
	}
	defer proxy.close()
	through := []string{"--kubeconfig", kubeconfig}

	// What the Restore restores: a backup, made before, of a fixed production.
	const restoreNS, backupNS = "chaos-outage-restore", "chaos-outage"
	var restoreRow row
	restoreVol, toRestore, err := c.backupFixed(restoreNS, "outage-restore", c.restoreBatches, &restoreRow)
	if err != nil {
		r.err = err
		return r
	}

	// The live backup, through the proxy, and the controller.
	cluster, vol, p, err := c.volumeBackup(backupNS, "outage")
	if err != nil {
		r.err = err
		return r
	}
	defer cluster.Close()
	controller := &supervisor{always: true, start: func(life int) (*worker, error) {
		return c.startProcess(fmt.Sprintf("outage-controller-%d.log", life), append([]string{"controller",
			"--metrics-bind-address", "0", "--health-probe-bind-address", "0", "--worker-image", "example.com/armory:chaos",
			"--leader-election-namespace", backupNS,
			"--leader-elect-lease-duration", "10s", "--leader-elect-renew-deadline", "8s", "--leader-elect-retry-period", "1s"}, through...))
	}}
	backup := &supervisor{always: true, start: func(life int) (*worker, error) {
		return c.startWorker(backupNS, vol, fmt.Sprintf("outage-backup-%d.log", life), append(through, "--status-interval", "1s")...)
	}}
	controller.run()
	backup.run()
	stopAll := func() error { return errors.Join(backup.stop(), controller.stop()) }
	defer stopAll()

	// The restore runs through the outage: each commit holds the target
	// cluster 100 ms, so that it lasts. The control sleeps in place, as
	// stalledCluster's does and for its reason (kfake's SleepControl races
	// with itself).
	restoreStarted := make(chan *supervisor, 1)
	restoreDone := make(chan error, 1)
	var restore *supervisor
	var outageStart, outageEnd time.Time
	go func() {
		restoreDone <- c.restoreAndCheck(restoreNS, restoreVol, toRestore, &restoreRow, restoreHow{
			flags: append(through, "--transaction-records", "100", "--status-interval", "1s"),
			during: func(t *kfake.Cluster, stop <-chan struct{}) error {
				paceCommits(t, 100*time.Millisecond)
				<-stop
				return nil
			},
			final: func(start func(life int) (*worker, error)) error {
				s := &supervisor{start: start}
				s.run()
				restoreStarted <- s
				<-s.done
				if s.err == nil && s.lastCode != 0 {
					return fmt.Errorf("the restore worker exited %d", s.lastCode)
				}
				return s.err
			},
		})
	}()
	// The outage begins once every process is at work.
	select {
	case restore = <-restoreStarted:
		defer restore.stop() // if the scenario ends early
	case err := <-restoreDone:
		r.err = fmt.Errorf("the restore ended before it began: %v", err)
		return r
	}
	for i := 0; ; i++ {
		bl, _ := os.ReadFile(filepath.Join(c.dir, "outage-backup-0.log"))
		rl, _ := os.ReadFile(filepath.Join(c.dir, fmt.Sprintf("restore-%s-final-0.log", restoreNS)))
		cl, _ := os.ReadFile(filepath.Join(c.dir, "outage-controller-0.log"))
		if strings.Count(string(bl), "Stream started") >= len(topics) && lastRestored(string(rl)) > 0 && strings.Contains(string(cl), "Successfully acquired lease") {
			break
		}
		if i == 600 {
			r.err = errors.New("the backup, the restore and the controller were not all at work within 60 s")
			return r
		}
		time.Sleep(100 * time.Millisecond)
	}
	before, err := c.env.Armory.KannikaV1alpha().Restores(restoreNS).Get(c.ctx, restoreName, metav1.GetOptions{})
	if r.err = err; r.err != nil {
		return r
	}
	outageStart = time.Now()
	proxy.down()
	r.faults["outage"]++
	time.Sleep(c.outage)
	if r.err = proxy.up(); r.err != nil {
		return r
	}
	outageEnd = time.Now()
	// Records keep coming after it (the first producer may have run out of
	// batches) while the statuses must catch up.
	produced, perr := p.finish()
	if r.err = perr; r.err != nil {
		return r
	}
	after, err := c.produceFrom(cluster.ListenAddrs(), recordCount(produced))
	if r.err = err; r.err != nil {
		return r
	}
	backupIn, restoreIn, err := c.statusesCatchUp(backupNS, restoreNS, outageEnd, before.Status.Records)
	time.Sleep(2 * time.Second) // records after the catch-up too
	more, perr := after.finish()
	if r.err = errors.Join(err, perr); r.err != nil {
		return r
	}
	for t, parts := range more {
		for part, recs := range parts {
			produced[t][part] = append(produced[t][part], recs...)
		}
	}
	if r.err = <-restoreDone; r.err != nil {
		return r
	}
	rs, err := c.env.Armory.KannikaV1alpha().Restores(restoreNS).Get(c.ctx, restoreName, metav1.GetOptions{})
	if r.err = err; r.err != nil {
		return r
	}
	if want := fmt.Sprintf("%d/%d", restoreRow.produced, restoreRow.produced); rs.Status.Phase != v1alpha.PhaseDone || rs.Status.Records != want {
		r.err = fmt.Errorf("the restore ended, and its status says %s %s, not %s %s", rs.Status.Phase, rs.Status.Records, v1alpha.PhaseDone, want)
		return r
	}
	r.faults["controller restarts"] = controller.exitedBetween(outageStart, time.Now())
	r.faults["backup worker restarts"] = backup.exitedBetween(outageStart, time.Now())
	r.faults["restore worker restarts"] = restore.exitedBetween(outageStart, time.Now())
	// Safety: a worker's writes end before its Lease could be taken, 10 s
	// (the Lease duration) after its last renewal, which came at most a
	// retry period (0.25 s) before the outage. A process that has exited
	// writes nothing.
	for _, w := range []struct {
		what string
		s    *supervisor
	}{{"backup", backup}, {"restore", restore}} {
		exited, ok := w.s.firstExitAfter(outageStart)
		if !ok {
			r.err = fmt.Errorf("the %s worker never exited during the outage", w.what)
			return r
		}
		after := exited.Sub(outageStart)
		r.notes = append(r.notes, fmt.Sprintf("the %s worker had exited %.1f s after the outage began (another could take its Lease after 9.75 s at the earliest)", w.what, after.Seconds()))
		if after >= 9750*time.Millisecond {
			r.err = fmt.Errorf("the %s worker exited %.1f s after the outage began: another worker could have taken its Lease by then", w.what, after.Seconds())
			return r
		}
	}
	r.notes = append(r.notes, fmt.Sprintf("after the API server came back, the Backup's status was right again in %.0f s (`Streaming`, %d/%d streams, an upload after the outage) "+
		"and the Restore's in %.0f s (its progress past the %s it showed before the outage); the Restore then ended `Done`, every record", backupIn.Seconds(), len(topics), len(topics), restoreIn.Seconds(), before.Status.Records))
	if r.err = stopAll(); r.err != nil {
		return r
	}
	if r.err = c.finalRun(backupNS, vol, nil, produced, &r); r.err != nil {
		return r
	}
	// The live backup is not restored (that would repeat the fixed one's
	// restore, without an outage): the fixed backup's restore is this
	// row's, and its records are counted with the live ones.
	r.restoreChecked, r.restored, r.restoreWanted = restoreRow.restoreChecked, restoreRow.restored, restoreRow.restoreWanted
	r.restoreLost, r.restoreDuplicated, r.restoreChanged = restoreRow.restoreLost, restoreRow.restoreDuplicated, restoreRow.restoreChanged
	r.produced += restoreRow.produced
	r.stored += restoreRow.stored
	r.lost, r.duplicated, r.changed = r.lost+restoreRow.lost, r.duplicated+restoreRow.duplicated, r.changed+restoreRow.changed
	r.iterations = fmt.Sprintf("the API server unreachable for %s (connections refused) while a backup under production, a restore and the controller ran; each exited once it could not reach the API server (a Lease it could not renew, a status it could not write) and was restarted with a kubelet's backoff", c.outage)
	r.seconds = time.Since(start).Seconds()
	return r
}

// statusesCatchUp waits (2 minutes at most) until the Backup streams again
// (Streaming, every stream running, an upload after since) and the Restore
// shows progress past what it showed before the outage (or is done), and
// says how long each took after since.
func (c *chaos) statusesCatchUp(backupNS, restoreNS string, since time.Time, restoredBefore string) (backup, restore time.Duration, err error) {
	var last string
	for range 600 {
		b, berr := c.env.Armory.KannikaV1alpha().Backups(backupNS).Get(c.ctx, "chaos", metav1.GetOptions{})
		rs, rerr := c.env.Armory.KannikaV1alpha().Restores(restoreNS).Get(c.ctx, restoreName, metav1.GetOptions{})
		if berr == nil && rerr == nil {
			// The status keeps whole seconds.
			uploaded := b.Status.LastUploadTime != nil && !b.Status.LastUploadTime.Time.Before(since.Truncate(time.Second))
			if backup == 0 && b.Status.Phase == v1alpha.PhaseStreaming && b.Status.StreamsReady == fmt.Sprintf("%d/%d", len(topics), len(topics)) && uploaded {
				backup = time.Since(since)
			}
			if restore == 0 && (rs.Status.Phase == v1alpha.PhaseDone || rs.Status.Phase == v1alpha.PhaseRestoring && restoredPast(rs.Status.Records, restoredBefore)) {
				restore = time.Since(since)
			}
			if backup > 0 && restore > 0 {
				return backup, restore, nil
			}
			last = fmt.Sprintf("Backup %s %s (an upload since the outage: %v), Restore %s %s", b.Status.Phase, b.Status.StreamsReady, uploaded, rs.Status.Phase, rs.Status.Records)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return 0, 0, fmt.Errorf("the statuses did not catch up within 2 minutes of the outage: %s (want the Backup Streaming and the Restore past %s)", last, restoredBefore)
}

// restoredPast reports whether a Restore's records column ("restored/total")
// shows more restored than before did.
func restoredPast(now, before string) bool {
	var n, b, total int64
	if _, err := fmt.Sscanf(now, "%d/%d", &n, &total); err != nil {
		return false
	}
	if _, err := fmt.Sscanf(before, "%d/%d", &b, &total); err != nil {
		b = 0 // nothing shown yet
	}
	return n > b
}

// backupFixed produces batches batches to a new cluster, backs them up to a
// volume at c.dir/name in namespace ns, checks the backup into r and
// returns the volume and what was produced.
func (c *chaos) backupFixed(ns, name string, batches int, r *row) (string, map[string]map[int32][]segment.Record, error) {
	cluster, dir, p, err := c.volumeBackup(ns, name)
	if err != nil {
		return "", nil, err
	}
	defer cluster.Close()
	for i := 0; p.count() < batches && i < 6000; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	produced, err := p.finish()
	if err != nil {
		return "", nil, err
	}
	return dir, produced, c.finalRun(ns, dir, nil, produced, r)
}
