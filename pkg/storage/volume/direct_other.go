//go:build !linux

package volume

import (
	"errors"
	"os"
)

// setDirect: unbuffered writes are Linux's O_DIRECT; elsewhere every write
// goes through the page cache.
func setDirect(_ *os.File, on bool) error {
	if on {
		return errors.ErrUnsupported
	}
	return nil
}

// pwritev writes bufs at off, one after another.
func pwritev(f *os.File, bufs [][]byte, off int64) (int, error) {
	written := 0
	for _, b := range bufs {
		n, err := f.WriteAt(b, off+int64(written))
		written += n
		if err != nil {
			return written, err
		}
	}
	return written, nil
}

func refused(error) bool { return false }
