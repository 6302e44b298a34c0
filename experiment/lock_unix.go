//go:build unix

package experiment

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// errLocked is returned by lockTrial when another process holds the lock.
var errLocked = errors.New("locked by another process")

// trialLock is a held lock on a trial directory.
type trialLock struct{ f *os.File }

// lockTrial takes the lock file at path without waiting: an advisory
// flock(2) lock, which the kernel releases when the holder exits, however
// it exits. On failure because another process holds it, the error wraps
// errLocked and names that process.
func lockTrial(path string) (*trialLock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(path)
		_ = f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			who := strings.TrimSpace(string(holder))
			if who == "" {
				who = "unknown"
			}
			return nil, fmt.Errorf("%w (%s)", errLocked, who)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	host, _ := os.Hostname()
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte("pid "+strconv.Itoa(os.Getpid())+" on "+host+"\n"), 0)
	return &trialLock{f: f}, nil
}

// unlock releases the lock.
func (l *trialLock) unlock() {
	_ = unix.Flock(int(l.f.Fd()), unix.LOCK_UN)
	_ = l.f.Close()
}
