package ownidsessions

import (
	"os"
	"syscall"
)

// servletProcAttr puts the servlet's JVM in its own process group and has
// the kernel kill it (SIGKILL) if the test binary dies first.
func servletProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// killServlet kills the JVM's whole process group.
func killServlet(p *os.Process) {
	syscall.Kill(-p.Pid, syscall.SIGKILL)
	p.Kill()
}
