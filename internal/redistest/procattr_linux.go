package redistest

import (
	"os/exec"
	"syscall"
)

// dieWithParent has the server killed when the test process ends, even
// if it is killed itself (a timeout, ^C) and no cleanup runs.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
