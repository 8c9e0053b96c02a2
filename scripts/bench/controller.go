package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kannika/armory/apis/kannika/v1alpha"
)

// controllerNamespacePrefix names the scenario's namespaces; the other
// scenarios' Backups live elsewhere and are not counted.
const controllerNamespacePrefix = "bench-controller-"

// controllerResult is what the controller scenario measured.
type controllerResult struct {
	backups, namespaces int
	// reconciled is the seconds from the controller's start to every
	// Backup having its Deployment and a status for its generation.
	reconciled float64
	// steady is how long the steady state was watched.
	steady time.Duration
	// reads and writes are the API requests the controller made during
	// the steady state, per minute.
	readsPerMinute, writesPerMinute float64
	// cpuSeconds is its CPU during the reconcile; steadyCPU per minute
	// of the steady state.
	cpuSeconds, steadyCPUPerMinute float64
	peakRSSMiB, steadyRSSMiB       float64
}

// controllerBench creates backups Backups across namespaces namespaces
// (each with its EventHub and Storage), then starts `armory controller` and
// measures how long it takes to give every Backup its Deployment and
// status, and what it costs the API server once nothing changes.
func (b *bench) controllerBench(backups, namespaces int, steady time.Duration) (controllerResult, error) {
	fmt.Printf("creating %d Backups in %d namespaces...\n", backups, namespaces)
	res := controllerResult{backups: backups, namespaces: namespaces, steady: steady}
	ctx := b.ctx
	for n := range namespaces {
		ns := fmt.Sprintf("%s%02d", controllerNamespacePrefix, n)
		if _, err := b.env.Kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			return res, err
		}
		c := b.env.Armory.KannikaV1alpha()
		if _, err := c.EventHubs(ns).Create(ctx, &v1alpha.EventHub{ObjectMeta: metav1.ObjectMeta{Name: "kafka"},
			Spec: v1alpha.EventHubSpec{Kafka: v1alpha.KafkaSettings{Properties: map[string]string{"bootstrap.servers": "127.0.0.1:9"}}}}, metav1.CreateOptions{}); err != nil {
			return res, err
		}
		if _, err := c.Storages(ns).Create(ctx, &v1alpha.Storage{ObjectMeta: metav1.ObjectMeta{Name: "storage"},
			Spec: v1alpha.StorageSpec{GCSBucket: &v1alpha.GCSBucket{Bucket: "bench"}}}, metav1.CreateOptions{}); err != nil {
			return res, err
		}
		for i := n; i < backups; i += namespaces {
			if _, err := c.Backups(ns).Create(ctx, &v1alpha.Backup{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("backup-%04d", i)},
				Spec: v1alpha.BackupSpec{Source: "kafka", Sink: "storage", Streams: []v1alpha.BackupStream{{Topic: fmt.Sprintf("topic-%04d", i)}}}},
				metav1.CreateOptions{}); err != nil {
				return res, err
			}
		}
	}

	metricsAddr, err := freeAddr()
	if err != nil {
		return res, err
	}
	logFile, removeLog, err := b.logFile("controller")
	if err != nil {
		return res, err
	}
	defer removeLog()
	args := []string{"controller", "--kubeconfig", b.env.Kubeconfig, "--worker-image", "ghcr.io/kannika/armory:bench",
		"--metrics-bind-address", metricsAddr, "--health-probe-bind-address", "0", "--leader-elect=false"}
	ctrl := exec.Command(b.armory, append(args, b.profileArgs("controller")...)...)
	ctrl.Stdout, ctrl.Stderr = logFile, logFile
	fmt.Println("armory controller...")
	start := time.Now()
	if err := ctrl.Start(); err != nil {
		return res, err
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = ctrl.Process.Kill()
			_ = ctrl.Wait()
		}
	}()
	rss := peakRSS(ctrl.Process.Pid)
	cpu := cpuTime(ctrl.Process.Pid)

	deadline := time.Now().Add(10 * time.Minute)
	for {
		done, err := b.reconciledBackups()
		if err != nil {
			return res, err
		}
		if done == backups {
			break
		}
		if time.Now().After(deadline) {
			return res, fmt.Errorf("the controller reconciled %d of %d Backups in 10 minutes", done, backups)
		}
		time.Sleep(250 * time.Millisecond)
	}
	res.reconciled = time.Since(start).Seconds()
	res.cpuSeconds = cpu()
	fmt.Printf("every Backup reconciled in %.1fs; watching the steady state for %s...\n", res.reconciled, steady)

	// Let the last status writes and their echoes settle, then count.
	time.Sleep(5 * time.Second)
	reads0, writes0, err := apiRequests(metricsAddr)
	if err != nil {
		return res, err
	}
	cpu0 := cpu()
	time.Sleep(steady)
	reads1, writes1, err := apiRequests(metricsAddr)
	if err != nil {
		return res, err
	}
	minutes := steady.Minutes()
	res.readsPerMinute, res.writesPerMinute = (reads1-reads0)/minutes, (writes1-writes0)/minutes
	res.steadyCPUPerMinute = (cpu() - cpu0) / minutes
	res.steadyRSSMiB = vmRSS(ctrl.Process.Pid) / 1024

	_ = ctrl.Process.Signal(syscall.SIGTERM)
	waitExited(ctrl.Process.Pid)
	res.peakRSSMiB = rss()
	stopped = true
	if err := ctrl.Wait(); err != nil {
		log, _ := os.ReadFile(logFile.Name())
		return res, fmt.Errorf("controller: %w\n%s", err, tail(log))
	}
	return res, nil
}

// reconciledBackups counts the Backups that have their Deployment and a
// status for their current generation.
func (b *bench) reconciledBackups() (int, error) {
	deployments, err := b.env.Kube.AppsV1().Deployments("").List(b.ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/component=backup-worker"})
	if err != nil {
		return 0, err
	}
	have := map[string]bool{}
	for _, d := range deployments.Items {
		have[d.Namespace+"/"+d.Labels["app.kubernetes.io/instance"]] = true
	}
	list, err := b.env.Armory.KannikaV1alpha().Backups("").List(b.ctx, metav1.ListOptions{})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, bk := range list.Items {
		if strings.HasPrefix(bk.Namespace, controllerNamespacePrefix) && have[bk.Namespace+"/"+bk.Name] &&
			bk.Status.Phase != "" && bk.Status.ObservedGeneration == bk.Generation {
			n++
		}
	}
	return n, nil
}

var requestLine = regexp.MustCompile(`(?m)^armory_kube_api_requests_total\{code="[^"]*",method="([A-Z]+)"\} (\S+)$`)

// apiRequests reads the controller's request counters: GETs (reads,
// watches included) and every other method (writes).
func apiRequests(addr string) (reads, writes float64, err error) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, 0, err
	}
	matches := requestLine.FindAllStringSubmatch(string(body), -1)
	if len(matches) == 0 {
		return 0, 0, fmt.Errorf("the controller's /metrics has no armory_kube_api_requests_total")
	}
	for _, m := range matches {
		v, _ := strconv.ParseFloat(m[2], 64)
		if m[1] == "GET" {
			reads += v
		} else {
			writes += v
		}
	}
	return reads, writes, nil
}
