package cmd

import (
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"

	"github.com/spf13/cobra"
)

// Profiles for `make bench PROFILE=DIR`: hidden flags, since they are for
// whoever measures Armory, not for running it.
var (
	cpuProfile   string
	allocProfile string
	cpuFile      *os.File
)

func addProfileFlags(root *cobra.Command) {
	f := root.PersistentFlags()
	f.StringVar(&cpuProfile, "cpu-profile", "", "Write a CPU profile (go tool pprof) to this file, from start to exit.")
	f.StringVar(&allocProfile, "alloc-profile", "", "Write an allocation profile (go tool pprof) to this file at exit.")
	_ = f.MarkHidden("cpu-profile")
	_ = f.MarkHidden("alloc-profile")
	root.PersistentPreRunE = func(*cobra.Command, []string) error {
		if cpuProfile == "" {
			return nil
		}
		var err error
		if cpuFile, err = os.Create(cpuProfile); err != nil {
			return fmt.Errorf("--cpu-profile: %w", err)
		}
		return pprof.StartCPUProfile(cpuFile)
	}
}

// stopProfiles writes the profiles asked for; a failure is reported, not
// fatal.
func stopProfiles() {
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
