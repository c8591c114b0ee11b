//go:build unix

package proxy

import (
	"net"
	"syscall"
)

// idleAlive reports whether an idle connection to the app is still open
// and quiet: a non-blocking peek sees neither the app's FIN nor bytes it
// had no reason to send. One system call, where http.Transport keeps a
// reader goroutine on every idle connection to learn the same.
func idleAlive(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	alive := false
	var b [1]byte
	err = rc.Read(func(fd uintptr) bool {
		_, _, rerr := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		alive = rerr == syscall.EAGAIN || rerr == syscall.EWOULDBLOCK
		return true
	})
	return err == nil && alive
}
