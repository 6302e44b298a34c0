//go:build !unix

package experiment

import "errors"

// errLocked is returned by lockTrial when another process holds the lock.
var errLocked = errors.New("locked by another process")

// trialLock is a held lock on a trial directory.
type trialLock struct{}

// lockTrial does nothing on systems without flock(2): there, two processes
// must not run the same grid directory at once.
func lockTrial(string) (*trialLock, error) { return &trialLock{}, nil }

// unlock releases the lock.
func (*trialLock) unlock() {}
