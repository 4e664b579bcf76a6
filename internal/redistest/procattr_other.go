//go:build !linux

package redistest

import "os/exec"

// dieWithParent does nothing here: only Linux kills a child with its
// parent, elsewhere the cleanups of the tests stop the servers.
func dieWithParent(*exec.Cmd) {}
