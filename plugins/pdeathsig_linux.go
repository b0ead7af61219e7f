package plugins

import (
	"os/exec"
	"syscall"
)

// setParentDeathSignal has Linux kill the plugin when the host dies, and
// puts the plugin in a process group of its own: a terminal's signals
// (Ctrl-C) reach the host, which ends its plugins itself, and the
// plugin's group is never orphaned while the host lives (the kernel
// continues stopped members of an orphaned group).
func setParentDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
}
