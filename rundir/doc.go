// Package rundir owns the format of a run directory, the record one
// training run leaves behind:
//
//	config.json       Record: every setting (Config) and where the run ran
//	metrics.csv       one EpochMetrics row per epoch (columns: Metrics)
//	summary.json      Summary, written when the run finishes
//	filter_norms.csv  every convolution filter's weight norm over training
//	checkpoints/      the trainer's checkpoints (their format is package train's)
//
// train writes these files through this package, and experiment and report
// read them through it, so a change of the format is a compile error
// rather than a silent mismatch. Every metric has a declared direction
// (higher or lower is better) and unit. The package depends on nothing but
// the standard library and atomicfile, the one atomic writer every file
// goes through.
package rundir

// Names of the files of a run directory.
const (
	ConfigFile      = "config.json"
	MetricsFile     = "metrics.csv"
	SummaryFile     = "summary.json"
	FilterNormsFile = "filter_norms.csv"
	// CheckpointDir is the subdirectory holding checkpoints.
	CheckpointDir = "checkpoints"
)
