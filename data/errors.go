package data

import "errors"

// ErrBadData is wrapped by every error this package returns for unusable
// input data: a corrupt, truncated or unreadable file (image, idx, CIFAR
// batch), a dataset whose parts disagree, or an image folder laid out
// wrongly (one class, no split folder, both val/ and test/). A command line
// tool can test errors.Is(err, data.ErrBadData) to report bad input (exit
// status 2) rather than an internal failure. Callers that find bad data
// themselves (a training split whose images differ in shape from the test
// split's, say) can wrap it too, preferably in a *FormatError naming the
// file or folder.
var ErrBadData = errors.New("bad input data")

// FormatError is a data file or folder that cannot be used. It wraps
// ErrBadData and the underlying error (so errors.Is also finds, say,
// fs.ErrNotExist for a file that vanished). Its message is the path, a colon
// and the reason; this package usually puts what kind of file it is in
// front ("image file /data/train/cat/1.jpg: unexpected EOF").
type FormatError struct {
	// File is the path of the file or folder.
	File string
	// Err says what is wrong with it.
	Err error
}

// Error implements error.
func (e *FormatError) Error() string { return e.File + ": " + e.Err.Error() }

// Unwrap returns the reason and ErrBadData, for errors.Is and errors.As.
func (e *FormatError) Unwrap() []error { return []error{e.Err, ErrBadData} }

// badFile returns a *FormatError for path.
func badFile(path string, err error) *FormatError { return &FormatError{File: path, Err: err} }
