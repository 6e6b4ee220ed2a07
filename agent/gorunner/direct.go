//go:build shim

// direct.go: a sandboxed command started as root, bubblewrap forked straight from the shim, with
// no `dice-shim _enter` between them (jail.go): one Go program's start fewer a start (its runtime's
// start, threads and exit, ~2 ms of CPU on two cores, bench/bench_step_start.py).
//
// What `_enter` did between its fork and bubblewrap's exec is done here so:
//   - the staged binds (stage: bubblewrap runs as the tenant's uid, which may not reach a bind's
//     source) are mounted in a mount namespace of one thread of the shim's: locked, unshared
//     (CLONE_NEWNS, made private as a fork's would be), never given back to the runtime. The
//     fork is made from that thread, so bubblewrap starts in that namespace. The thread waits
//     until the shim exits: it is the command's parent, whose end is its death signal.
//   - the tenant's uid, gid and no supplementary groups, its own process group, the death signal
//     and /: the fork's own settings (syscall.SysProcAttr), as the runtime makes them between
//     its fork and exec. The CPU priority is that thread's (inherited by the fork).
//   - the rlimits: the shim's own, set before the fork (it serves this one command; its few
//     descriptors fit the sandbox's; a hard limit lowered cannot be raised again, and another
//     process's cannot be set without CAP_SYS_RESOURCE, which root may lack, as here). The two
//     that could hurt the shim, the process count and the address space, stand in for missing
//     pids and memory controllers: a sandbox that needs them starts through `_enter`.
//   - the cgroup, which nothing between a Go fork and exec can join: bubblewrap is started with
//     `--args FD` and reads its whole command line from that pipe before it does anything else.
//     Meanwhile the shim moves it into the sandbox's cgroups, then writes the command line. It
//     never runs a step of its own outside them. If the shim dies first, the pipe's end and the
//     death signal end it.
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"unsafe"
)

// Descriptors of the forked bubblewrap: its standard streams, then these.
const (
	directInfoFD = 3 // --info-fd
	directArgsFD = 4 // --args
)

// directSandbox: whether a sandboxed start takes this path: as root (the unprivileged one needs
// no staging and keeps `_enter`), where no limit needs an rlimit the shim cannot take itself.
func directSandbox(box *sandboxed) bool {
	if box == nil || os.Geteuid() != 0 {
		return false
	}
	s, controllers := box.spec, map[string]bool{}
	if box.cg != nil {
		controllers = box.cg.controllers
	}
	return (s.Nproc <= 0 || controllers["pids"]) && (s.MemMiB <= 0 || controllers["memory"]) &&
		(s.Nofile <= 0 || s.Nofile >= minShimFiles)
}

// minShimFiles: the descriptors a shim may need (logs, pipes, /proc reads), with room to spare.
const minShimFiles = 64

type forked struct {
	pid int
	err error
}

// startDirect: bubblewrap for `command` in the sandbox of box, with stdio as its standard
// streams and infoW as its info pipe; its pid once it has its command line, in its cgroups.
func startDirect(a *shimArgs, box *sandboxed, command []string, stdio [3]int, infoW int) (int, error) {
	s := box.spec
	// Its options through the pipe; `-- COMMAND...` on its command line (bubblewrap takes no
	// command from --args).
	argv := bwrapArgv(s, command, a.cwd, directInfoFD, true)
	options := argv[1 : len(argv)-len(command)-1]
	argv = append([]string{argv[0], "--args", strconv.Itoa(directArgsFD), "--"}, command...)
	env := sandboxEnv(s, commandEnv())
	if s.Nofile > 0 {
		if err := setrlimit(syscall.RLIMIT_NOFILE, s.Nofile); err != nil {
			return 0, err
		}
	}
	if err := setrlimit(rlimitCore, 0); err != nil {
		return 0, err
	}
	argsR, argsW, err := pipe()
	if err != nil {
		return 0, err
	}
	defaultSignalsInChild() // no signal ignored in the command (exec resets the handled ones)
	result := make(chan forked, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: see the file's comment
		pid, err := forkStaged(s, a.priority, argv, env, []uintptr{
			uintptr(stdio[0]), uintptr(stdio[1]), uintptr(stdio[2]), uintptr(infoW), uintptr(argsR)})
		result <- forked{pid, err}
		if err == nil {
			select {} // the command's parent thread lives as long as the shim
		}
		// A failed start: the goroutine ends locked, and the runtime ends its thread with it.
	}()
	got := <-result
	syscall.Close(argsR)
	if got.err != nil {
		syscall.Close(argsW)
		return 0, got.err
	}
	if err := confine(got.pid, box); err != nil {
		syscall.Close(argsW)
		_ = syscall.Kill(got.pid, syscall.SIGKILL)
		var ws syscall.WaitStatus
		_, _ = syscall.Wait4(got.pid, &ws, 0, nil)
		return 0, err
	}
	var line strings.Builder
	for _, arg := range options {
		line.WriteString(arg)
		line.WriteByte(0)
	}
	data := []byte(line.String())
	for len(data) > 0 { // bubblewrap reads it all before anything else: a long one never waits long
		n, err := syscall.Write(argsW, data)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			syscall.Close(argsW)
			return 0, &os.PathError{Op: "write", Path: "bubblewrap's arguments", Err: err}
		}
		data = data[n:]
	}
	syscall.Close(argsW)
	return got.pid, nil
}

// forkStaged: on a locked thread: its own mount namespace with the binds staged, then bubblewrap
// forked from it as the tenant, waiting for its arguments on directArgsFD.
func forkStaged(s *sandboxSpec, priority string, argv, env []string, files []uintptr) (int, error) {
	if err := syscall.Unshare(syscall.CLONE_NEWNS); err != nil {
		return 0, fmt.Errorf("unshare: %s", errnoText(err.(syscall.Errno)))
	}
	// As a fork with CLONE_NEWNS makes it (syscall's forkAndExecInChild): nothing mounted here
	// reaches the host's namespace.
	if err := mount("none", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
		return 0, err
	}
	if err := stage(s.Binds); err != nil {
		return 0, err
	}
	if err := threadPriority(priority); err != nil {
		return 0, err
	}
	return syscall.ForkExec(argv[0], argv, &syscall.ProcAttr{
		Dir: "/", Env: env, Files: files,
		Sys: &syscall.SysProcAttr{
			Setpgid:    true,
			Pdeathsig:  syscall.SIGKILL,
			Credential: &syscall.Credential{Uid: uint32(s.UID), Gid: uint32(s.GID), Groups: []uint32{}},
		},
	})
}

// threadPriority: setPriority's policy or nice value on this thread alone (what it forks inherits).
func threadPriority(priority string) error {
	priority = strings.TrimSpace(priority)
	if priority == "" || priority == "0" || priority == "normal" {
		return nil
	}
	tid := syscall.Gettid()
	if priority == "idle" {
		param := [1]int32{0}
		if _, _, e := syscall.RawSyscall(syscall.SYS_SCHED_SETSCHEDULER, uintptr(tid), 5 /* SCHED_IDLE */, uintptr(unsafe.Pointer(&param[0]))); e == 0 {
			return nil
		}
		priority = "19"
	}
	nice, err := strconv.Atoi(priority)
	if err != nil || nice < 1 || nice > 19 {
		return fmt.Errorf("job priority %s: use idle, normal or a nice value 1-19", PyRepr(priority))
	}
	return syscall.Setpriority(syscall.PRIO_PROCESS, tid, nice)
}

// confine: the waiting bubblewrap into the sandbox's cgroups.
func confine(pid int, box *sandboxed) error {
	if box.cg == nil {
		return nil
	}
	for _, d := range box.cg.dirs {
		if err := writeFile(d+"/cgroup.procs", strconv.Itoa(pid)); err != nil {
			return fmt.Errorf("cannot join the sandbox's cgroup: %v", err)
		}
	}
	return nil
}
