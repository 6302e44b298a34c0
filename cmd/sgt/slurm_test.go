package main

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sgt-dev/sgt/experiment"
)

// slurmTestEnv enables TestSlurmGrid.
const slurmTestEnv = "SGT_SLURM_TEST"

// TestSlurmGrid runs deploy/slurm-grid.sbatch on a real Slurm: a cluster of
// one node, this machine, started by deploy/slurm-test-cluster.sh. The
// script runs as an array of 2 tasks, each a shard of a small MNIST grid
// (the MLP for 1 epoch on a few hundred images, alpha 1 and 0.3 over 2
// seeds: 4 trials); "sgt grid collect" must then find every trial done,
// each shard's trials run by its own task.
//
// It runs when SGT_SLURM_TEST is set (.ci/run sets it) and the test runs as
// root; slurm-wlm and munge are installed with apt-get when missing.
func TestSlurmGrid(t *testing.T) {
	if os.Getenv(slurmTestEnv) == "" {
		t.Skipf("set %s=1 to run the Slurm array test (needs root; installs slurm-wlm and munge with apt-get when missing; .ci/run sets it)", slurmTestEnv)
	}
	if os.Geteuid() != 0 {
		t.Skipf("%s is set, but the test needs root to start munged, slurmctld and slurmd", slurmTestEnv)
	}
	script, err := filepath.Abs(filepath.Join("..", "..", "deploy", "slurm-test-cluster.sh"))
	if err != nil {
		t.Fatal(err)
	}
	sbatchScript, err := filepath.Abs(filepath.Join("..", "..", "deploy", "slurm-grid.sbatch"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tool := range []string{"munged", "slurmctld", "slurmd", "sbatch"} {
		if _, err := exec.LookPath(tool); err != nil {
			if _, err := exec.LookPath("apt-get"); err != nil {
				t.Skipf("%s is missing and there is no apt-get to install slurm-wlm and munge", tool)
			}
			if out, err := exec.Command("bash", script, "install").CombinedOutput(); err != nil {
				t.Skipf("could not install slurm-wlm and munge: %v\n%s", err, out)
			}
			break
		}
	}
	// One test cluster at a time on this machine (its ports are fixed).
	lock, err := os.OpenFile(filepath.Join(os.TempDir(), "sgt-slurm-test.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}

	// The daemons run as other users (munge): the directories must be
	// reachable by all.
	root, err := os.MkdirTemp("", "sgt-slurm-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	sgtBin := filepath.Join(root, "sgt")
	if out, err := exec.Command("go", "build", "-o", sgtBin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	cluster := filepath.Join(root, "cluster")
	out, err := exec.Command("bash", script, "start", cluster).CombinedOutput()
	if err != nil {
		t.Fatalf("starting the Slurm cluster: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("bash", script, "stop", cluster).CombinedOutput(); err != nil {
			t.Errorf("stopping the Slurm cluster: %v\n%s", err, out)
		}
	})
	var slurmConf string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "SLURM_CONF="); ok {
			slurmConf = v
		}
	}
	if slurmConf == "" {
		t.Fatalf("the cluster script printed no SLURM_CONF:\n%s", out)
	}

	grid := filepath.Join(root, "grid")
	logs := filepath.Join(root, "logs")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	// The script's resources (8 CPUs, 8 GB per task) are for real nodes:
	// sbatch options on the command line override them.
	sbatch := exec.CommandContext(ctx, "sbatch", "--wait", "--parsable", "--array=0-1", "--cpus-per-task=1", "--mem=1G",
		"--time=10:00", "--output="+filepath.Join(logs, "task-%a.log"), "--chdir="+root, sbatchScript)
	sbatch.Env = append(os.Environ(),
		"SLURM_CONF="+slurmConf,
		"GRID_DIR="+grid,
		"SGT="+sgtBin,
		"GRID_ARGS=--data mnist --model mlp --epochs 1 --train-size 384 --test-size 256 --batch-size 64 --alpha 1,0.3 --seeds 2 --backend cpu",
	)
	out, err = sbatch.CombinedOutput()
	taskLogs := map[int]string{}
	for i := range 2 {
		b, _ := os.ReadFile(filepath.Join(logs, "task-"+string(rune('0'+i))+".log"))
		taskLogs[i] = string(b)
	}
	if err != nil {
		t.Fatalf("sbatch --wait: %v\n%s\ntask 0:\n%s\ntask 1:\n%s\nslurmd log:\n%s", err, out, taskLogs[0], taskLogs[1], tail(filepath.Join(cluster, "log", "slurmd.log")))
	}
	for i := range 2 {
		if want := "(shard " + string(rune('0'+i)) + "/2: 2 trials)"; !strings.Contains(taskLogs[i], want) {
			t.Errorf("task %d's log does not say %q:\n%s", i, want, taskLogs[i])
		}
	}

	code, collectOut, errOut := runCLI(t, "grid", "collect", grid)
	if code != 0 || !strings.Contains(collectOut, "4 trials: 4 done, 0 failed, 0 not finished") {
		t.Fatalf("grid collect: exit %d\n%s%s", code, collectOut, errOut)
	}
	m, err := experiment.ReadManifest(grid)
	if err != nil {
		t.Fatal(err)
	}
	pids := map[int]map[int]bool{} // shard -> pids of its trials
	for _, tr := range m.Trials {
		shard := tr.Index % 2
		if pids[shard] == nil {
			pids[shard] = map[int]bool{}
		}
		pids[shard][tr.PID] = true
	}
	if len(pids[0]) != 1 || len(pids[1]) != 1 {
		t.Errorf("processes per shard %v; want one process for each shard's trials", pids)
	}
	for pid := range pids[0] {
		if pids[1][pid] {
			t.Errorf("both shards' trials ran in process %d; want one array task each", pid)
		}
	}
}

// tail returns the last lines of a file, for failure messages.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(len(lines)-20, 0):], "\n")
}
