package main

import (
	"fmt"
	"math"
	"strings"
)

// backupTargets are the speeds the performance issue asks of a backup to a
// volume, against kcat -C, by compression.
var backupTargets = []struct {
	codec string
	ratio float64
}{{"none", 0.9}, {"lz4", 0.6}, {"zstd", 0.5}}

// renderTargets sets each volume backup beside its target, and says from
// this run's own figures what stands in the way of one not met: the CPU the
// run used for its bytes, spent within the target's time, would need more
// cores than the machine has (the reader's and kfake's, which serves the
// records on the same cores); or, when it would fit and the rate while
// records flow meets the target, the costs a run pays once (its start, the
// drain of the last segments, with what the worker's page faults cost at
// faultMicros each); or else waiting. When storage alone (the volume-alone
// row, else the dd row) is slower than a target, no backup to it can meet
// it, whatever the cores: that is said too; when it is faster and the
// cores would do, how near the backup came to it. Where the cores would
// do, the same backup to tmpfs, when it ran, says whether the disk was
// what stood in the way, and sarama's consumer alone, when it ran, how
// much of the time is the client's.
func renderTargets(backups []result, cores int, faultMicros float64) string {
	if len(backups) == 0 || !strings.Contains(backups[0].name, "baseline") {
		return ""
	}
	base := backups[0]
	// The storage's own speed: the volume storing segments by itself as a
	// backup does (unbuffered, an fsync each) if it ran, else dd's.
	diskRatio, diskSays := 0.0, ""
	for _, r := range backups {
		switch {
		case r.seconds <= 0:
		case r.name == volumeAloneName:
			diskRatio, diskSays = base.seconds/r.seconds, "storing alone (the volume-alone row) runs at"
		case strings.Contains(r.name, " dd bs=") && diskSays == "":
			diskRatio, diskSays = base.seconds/r.seconds, "the disk alone (the dd row) writes at"
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n### Against the targets\n\nThe targets are kcat -C's time over the ratio (%.1f s / ratio). \"Cores needed\" is the CPU "+
		"the backup used (its own and kfake's, from the table above) over that time: what the same work would need to finish in it; "+
		"this machine has %d. The compression and storage columns are the profile's \"%s\" and \"%s\" over the same time "+
		"(for a volume, storage is mostly the kernel's: writing the files, a segment of 1 MiB or more unbuffered from the worker's memory to the device, and fsync). kcat -C with kfake used %.1f CPU s.\n\n",
		base.seconds, cores, strings.TrimPrefix(compressingPart, "… of which "), storagePart, base.cpuSeconds+base.kfakeCPUSeconds)
	b.WriteString("| backup to a volume | target | reached | while records flow | CPU s, worker + kfake | cores needed at the target | " +
		"of which compressing | of which storage | what stands in the way |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, t := range backupTargets {
		r := findResult(backups, fmt.Sprintf("armory worker --backup → volume (%s)", t.codec))
		if r == nil {
			continue
		}
		reached := base.seconds / r.seconds
		targetSeconds := base.seconds / t.ratio
		cpu := r.cpuSeconds + r.kfakeCPUSeconds
		needed := cpu / targetSeconds
		compressing, storing := "", ""
		var compressingCores, storingCores float64
		if secs, _, err := profileParts(r.profile, backupCPUParts); err == nil {
			compressingCores = secs[compressingPart] / targetSeconds
			storingCores = secs[storagePart] / targetSeconds
			compressing = fmt.Sprintf("%.1f cores", compressingCores)
			storing = fmt.Sprintf("%.1f cores", storingCores)
		}
		flowing, flowRatio, once := "", 0.0, 0.0
		if r.flowMBps > 0 && base.bytes > 0 {
			flowRatio = r.flowMBps / (float64(base.bytes) / base.seconds / 1e6)
			flowing = fmt.Sprintf("%.2f×", flowRatio)
			once = r.seconds - float64(r.bytes)/(r.flowMBps*1e6)
		}
		var why string
		switch {
		case reached >= t.ratio:
			why = "met"
		case needed > float64(cores):
			why = fmt.Sprintf("CPU: the work of this run needs %.2f cores to finish in %.1f s, this machine has %d", needed, targetSeconds, cores)
			if compressingCores >= 0.05 {
				why += fmt.Sprintf("; compressing alone, %.1f", compressingCores)
			}
			if storingCores >= 0.05 {
				why += fmt.Sprintf("; writing to the volume alone, %.1f", storingCores)
			}
		case flowRatio >= t.ratio:
			why = fmt.Sprintf("not CPU (%.2f cores would do), and met while records flow: %.1f s of the %.1f s are paid once, the start "+
				"and the drain of the last segments", needed, once, r.seconds)
			if faultMicros > 0 && r.pageFaults > 0 {
				why += fmt.Sprintf("; of the worker's CPU, about %.1f s went to first touches of its memory (%d page faults at %.1f µs), "+
					"mostly while its memory grows, early in the run", float64(r.pageFaults)*faultMicros/1e6, r.pageFaults, faultMicros)
			}
		default:
			// Neither the cores nor the costs paid once account for it:
			// the run waited, on the disk, on Kafka, or for the cores the
			// hypervisor gave to others.
			why = fmt.Sprintf("not CPU (%.2f cores would do), and below the target while records flow too: the run waited, on the disk "+
				"(its fsyncs; see the dd and volume-alone rows), on Kafka, or for cores (steal %.0f%%)", needed, r.stealPct)
		}
		if tmpfs := findResult(backups, fmt.Sprintf("armory worker --backup → volume on tmpfs (%s)", t.codec)); why != "met" &&
			needed <= float64(cores) && tmpfs != nil && tmpfs.seconds > 0 {
			// The same backup with no disk under it: whether the disk
			// or the cores were in the way.
			tmpfsCPU := tmpfs.cpuSeconds + tmpfs.kfakeCPUSeconds
			tmpfsCores := math.Round(tmpfsCPU/targetSeconds*100) / 100 // as printed
			why += fmt.Sprintf("; to tmpfs, with no disk to wait on, it reached %.2f×, its CPU and kfake's (%.1f s) needing %.2f cores at the target",
				base.seconds/tmpfs.seconds, tmpfsCPU, tmpfsCores)
			if tmpfsCores > float64(cores) {
				why += fmt.Sprintf(", more than this machine's %d", cores)
			}
		}
		if sa := findResult(backups, saramaAloneName); why != "met" && sa != nil && sa.seconds > 0 {
			// The Kafka client by itself: how much of the time is the
			// client's, how much the worker's own work.
			why += fmt.Sprintf("; sarama's consumer alone read the topic at %.2f× kcat -C (%.1f s, %.1f CPU s)", base.seconds/sa.seconds, sa.seconds, sa.cpuSeconds)
			switch own := r.cpuSeconds - sa.cpuSeconds; {
			case sa.seconds >= r.seconds:
				why += ", no faster than this backup: the Kafka client by itself misses the target here"
			case own < 0.05:
				why += ": the worker used no more CPU than it"
			default:
				why += fmt.Sprintf(": the worker's %.1f CPU s beyond it are its own work", own)
			}
		}
		switch {
		case why == "met" || diskRatio <= 0:
		case diskRatio < t.ratio:
			why += fmt.Sprintf("; and %s %.2f× kcat -C: a backup that stores every byte on it cannot reach %.2f×", diskSays, diskRatio, t.ratio)
		case needed <= float64(cores):
			// Not short of cores, and the storage would be fast enough:
			// how near the backup came to the storage's own speed.
			why += fmt.Sprintf("; and %s %.2f× kcat -C, this backup at %.2f× that", diskSays, diskRatio, reached/diskRatio)
		}
		fmt.Fprintf(&b, "| %s | %.2f× (%.1f s) | %.2f× | %s | %.1f | %.2f | %s | %s | %s |\n",
			t.codec, t.ratio, targetSeconds, reached, flowing, cpu, needed, compressing, storing, why)
	}
	return b.String()
}

// findResult returns the last result of that name, or nil.
func findResult(results []result, name string) *result {
	var found *result
	for i := range results {
		if results[i].name == name {
			found = &results[i]
		}
	}
	return found
}
