// Package secretlog keeps Secret values out of logs. client-go logs request
// and response bodies (a Secret's data among them) at -v=8 and above, and
// request details from -v=6, through the request context's logger. A call
// made with Context's context logs through a logger that drops those
// verbosities, whatever -v says, and keeps everything below them (errors,
// warnings, -v=2 state changes).
package secretlog

import (
	"context"

	"github.com/go-logr/logr"
	"k8s.io/klog/v2"
)

// maxLevel is the highest verbosity passed on: client-go's debugging round
// tripper starts at 6.
const maxLevel = 5

// Context returns ctx with its logger capped below client-go's request
// dumps: use it for every API call that reads or watches Secrets.
func Context(ctx context.Context) context.Context {
	base := klog.FromContext(ctx)
	// WithSink, not logr.New: New would Init the shared sink again, which
	// writes to it while other goroutines log through it.
	return klog.NewContext(ctx, base.WithSink(capped{base.GetSink()}))
}

// capped passes on messages up to maxLevel, and every error.
type capped struct{ logr.LogSink }

func (c capped) Enabled(level int) bool { return level <= maxLevel && c.LogSink.Enabled(level) }

func (c capped) Info(level int, msg string, kv ...any) {
	if level <= maxLevel {
		c.LogSink.Info(level, msg, kv...)
	}
}

func (c capped) WithValues(kv ...any) logr.LogSink { return capped{c.LogSink.WithValues(kv...)} }

func (c capped) WithName(name string) logr.LogSink { return capped{c.LogSink.WithName(name)} }
