package testenv

import (
	"bytes"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Output collects a subprocess's output safely while it runs.
type Output struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (o *Output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.Write(p)
}

func (o *Output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// FreeAddr returns a loopback address whose port was free at the time of
// asking, for a subprocess to listen on.
//
// The port comes from below the kernel's ephemeral range (32768–60999 by
// default): a port from that range, freed here, can be taken by any outgoing
// connection before the subprocess binds it (CI saw "address already in use"
// that way). Below it, only another listener can clash, and each port is
// handed out once per test process.
func FreeAddr(t testing.TB) string {
	t.Helper()
	freeAddrMu.Lock()
	defer freeAddrMu.Unlock()
	for range 200 {
		port := freeAddrLow + rand.IntN(freeAddrHigh-freeAddrLow)
		if freeAddrGiven[port] {
			continue
		}
		if !reservePort(port) {
			continue // handed out by another test process
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		l, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		l.Close()
		freeAddrGiven[port] = true
		return addr
	}
	t.Fatalf("no free loopback port in [%d, %d) after 200 tries", freeAddrLow, freeAddrHigh)
	return ""
}

const freeAddrLow, freeAddrHigh = 20000, 32000

// reservePort claims a port for this machine's test processes with a file
// created exclusively: the test packages run in parallel, and two of them
// handing one port to their subprocesses made one fail to bind in CI. A
// claim older than portClaimTTL (longer than any test run) is reused.
func reservePort(port int) bool {
	dir := filepath.Join(os.TempDir(), "armory-test-ports")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return true // no reservation possible: the listen check still applies
	}
	path := filepath.Join(dir, strconv.Itoa(port))
	for range 2 {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err == nil {
			f.Close()
			return true
		}
		st, serr := os.Stat(path)
		if serr != nil || time.Since(st.ModTime()) < portClaimTTL {
			return false
		}
		_ = os.Remove(path) // a stale claim
	}
	return false
}

const portClaimTTL = 30 * time.Minute

var (
	freeAddrMu    sync.Mutex
	freeAddrGiven = map[int]bool{}
)

// HTTPGet fetches http://addr/path and returns the status code and body (code
// 0 and the error text if the request failed).
func HTTPGet(addr, path string) (int, string) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + addr + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// WaitFor polls cond every 100ms until it holds, or fails the test after
// timeout with what it waited for and the last state cond described.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s; last seen: %s", timeout, what, state)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// hexDumpLine is a line of the hex dump client-go logs a protobuf body as:
// offset, 16 bytes in hex, and the same bytes as text between bars.
var hexDumpLine = regexp.MustCompile(`^\s*[0-9a-f]{8}  (?:[0-9a-f ]{2} ?){8} (?:[0-9a-f ]{2} ?){8} \|(.*)\|$`)

// LogText is a log as a search for leaked secrets needs it: the log itself,
// and the text column of every hex dump joined up again, so that a value
// split over dump lines is found too.
func LogText(log string) string {
	var joined strings.Builder
	for _, line := range strings.Split(log, "\n") {
		if m := hexDumpLine.FindStringSubmatch(line); m != nil {
			joined.WriteString(m[1])
		} else {
			joined.WriteByte('\n')
		}
	}
	return log + "\n" + joined.String()
}
