// Command armory backs up Apache Kafka topics to object storage and restores
// them, driven by kannika.io custom resources. `armory controller` runs in the
// cluster; `armory worker` runs one Backup or Restore.
package main

import (
	"os"

	"github.com/kannika/armory/pkg/cmd"
)

func main() {
	os.Exit(cmd.Execute())
}
