package report

import "testing"

// BenchmarkBuild measures building a report, tables and every figure, from
// the nine runs of standardRuns.
func BenchmarkBuild(b *testing.B) {
	root := standardRuns(b)
	for b.Loop() {
		if _, err := Build([]string{root}, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}
