package secretlog

import (
	"bytes"
	"context"
	"flag"
	"strings"
	"testing"

	"k8s.io/klog/v2"
)

func TestContextDropsRequestDumps(t *testing.T) {
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	_ = fs.Set("v", "10")
	_ = fs.Set("logtostderr", "false")
	var out bytes.Buffer
	klog.SetOutput(&out)
	defer klog.SetOutput(nil)
	ctx := Context(klog.NewContext(context.Background(), klog.Background()))
	logger := klog.FromContext(ctx)
	logger.V(8).Info("Response Body", "body", "the-secret-value")
	logger.V(6).Info("GET https://api/secrets/x")
	logger.V(2).Info("kept")
	logger.Error(nil, "kept error")
	klog.Flush()
	got := out.String()
	if strings.Contains(got, "the-secret-value") || strings.Contains(got, "GET https") {
		t.Errorf("a request dump got through:\n%s", got)
	}
	if !strings.Contains(got, "kept") || !strings.Contains(got, "kept error") {
		t.Errorf("lower verbosities and errors were dropped:\n%s", got)
	}
	if klog.FromContext(ctx).V(6).Enabled() {
		t.Error("V(6) is enabled: client-go would build its dumps")
	}
}
