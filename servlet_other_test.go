//go:build !linux

package ownidsessions

import (
	"os"
	"syscall"
)

// servletProcAttr: without Pdeathsig the JVM still exits when the test
// binary dies, because its stdin (a pipe from the test) reaches end of file.
func servletProcAttr() *syscall.SysProcAttr { return nil }

func killServlet(p *os.Process) { p.Kill() }
