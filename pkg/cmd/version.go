package cmd

import (
	"fmt"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version and commit are set at build time (make build does):
//
//	go build -ldflags "-X github.com/kannika/armory/pkg/cmd.version=v0.3.0 -X github.com/kannika/armory/pkg/cmd.commit=$(git rev-parse HEAD)"
//
// Without them, what Go recorded in the binary is used (the module version,
// and the VCS commit unless it was built with -buildvcs=false).
var version, commit = "", ""

// Version is "armory <version> (commit <hash>[, modified], <go version>)".
func Version() string {
	v, rev, dirty, goVersion := version, commit, false, "unknown"
	if info, ok := debug.ReadBuildInfo(); ok {
		goVersion = info.GoVersion
		if v == "" {
			v = info.Main.Version
		}
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				if rev == "" {
					rev = s.Value
				}
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
	}
	if v == "" {
		v = "(devel)"
	}
	if rev == "" {
		rev = "unknown"
	}
	if dirty {
		rev += ", modified"
	}
	return fmt.Sprintf("armory %s (commit %s, %s)", v, rev, goVersion)
}

func newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print Armory's version and the commit it was built from",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), Version())
		},
	}
}
