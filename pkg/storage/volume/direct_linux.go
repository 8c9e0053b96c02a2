package volume

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// setDirect turns unbuffered I/O on or off for f's next writes. Turning it
// on fails where the filesystem has none.
func setDirect(f *os.File, on bool) error {
	fd := f.Fd()
	flags, err := unix.FcntlInt(fd, unix.F_GETFL, 0)
	if err != nil {
		return err
	}
	if on {
		flags |= unix.O_DIRECT
	} else {
		flags &^= unix.O_DIRECT
	}
	_, err = unix.FcntlInt(fd, unix.F_SETFL, flags)
	return err
}

// pwritev writes bufs at off in one system call and returns the bytes
// written (0, not the system call's -1, when it failed).
func pwritev(f *os.File, bufs [][]byte, off int64) (int, error) {
	for {
		n, err := unix.Pwritev(int(f.Fd()), bufs, off)
		if !errors.Is(err, unix.EINTR) {
			return max(n, 0), err
		}
	}
}

// refused reports an unbuffered write the kernel refused for its alignment.
func refused(err error) bool { return errors.Is(err, unix.EINVAL) }
