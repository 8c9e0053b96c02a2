package cmd

import (
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"runtime/trace"

	"github.com/spf13/cobra"
)

// Profiles for `make bench PROFILE=DIR`: hidden flags, since they are for
// whoever measures Armory, not for running it.
var (
	cpuProfile   string
	allocProfile string
	traceOut     string
	cpuFile      *os.File
	traceFile    *os.File
)

func addProfileFlags(root *cobra.Command) {
	f := root.PersistentFlags()
	f.StringVar(&cpuProfile, "cpu-profile", "", "Write a CPU profile (go tool pprof) to this file, from start to exit.")
	f.StringVar(&allocProfile, "alloc-profile", "", "Write an allocation profile (go tool pprof) to this file at exit.")
	f.StringVar(&traceOut, "trace", "", "Write an execution trace (go tool trace) to this file, from start to exit: where goroutines wait, not only where CPU goes.")
	_ = f.MarkHidden("cpu-profile")
	_ = f.MarkHidden("alloc-profile")
	_ = f.MarkHidden("trace")
	root.PersistentPreRunE = func(*cobra.Command, []string) error {
		var err error
		if cpuProfile != "" {
			if cpuFile, err = os.Create(cpuProfile); err != nil {
				return fmt.Errorf("--cpu-profile: %w", err)
			}
			if err := pprof.StartCPUProfile(cpuFile); err != nil {
				return fmt.Errorf("--cpu-profile: %w", err)
			}
		}
		if traceOut != "" {
			if traceFile, err = os.Create(traceOut); err != nil {
				return fmt.Errorf("--trace: %w", err)
			}
			if err := trace.Start(traceFile); err != nil {
				return fmt.Errorf("--trace: %w", err)
			}
		}
		return nil
	}
}

// stopProfiles writes the profiles asked for; a failure is reported, not
// fatal.
func stopProfiles() {
	if traceFile != nil {
		trace.Stop()
		_ = traceFile.Close()
	}
	if cpuFile != nil {
		pprof.StopCPUProfile()
		_ = cpuFile.Close()
	}
	if allocProfile != "" {
		f, err := os.Create(allocProfile)
		if err == nil {
			runtime.GC()
			err = pprof.Lookup("allocs").WriteTo(f, 0)
			_ = f.Close()
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "--alloc-profile: %v\n", err)
		}
	}
}
