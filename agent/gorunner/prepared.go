//go:build shim

// prepared.go: `dice-shim --wait`, the compiled shim started ahead of its request, as the Python
// process starter's waiting child is forked ahead of its (scheduler/local/spawner.py).
//
// The console keeps one waiting: started with nothing but the Go runtime's settings in its
// environment, it holds nothing of any request. While it waits it makes what a sandboxed start
// waits for most, the command's process moved into its cgroup (on cgroup v1 each move waits for
// the kernel: 13 ms median per start at load 3, bench/bench_step_start.py): its cgroup
// directories, without limits yet, and `dice-shim _enter --join DIR...`, which joins them and
// waits for its order. The request comes on standard input, one JSON object
// {"args": [the shim's arguments], "env": {the command's environment}}, then the end of input.
// A request for a sandbox in a cgroup of the same version takes the prepared process (the shim
// writes the limits before the order: no tenant code runs without them); any other lets it go
// (the end of its order pipe) and removes the directories. A request already waiting when the
// shim starts (a burst) is not kept waiting for a preparation: it forks at the request.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"syscall"
)

type prepared struct {
	cg                *cgroup
	enter             *enterProc
	outR, errR, infoR int
}

// prepare: the command's process made ahead (nil where it cannot be).
func prepare(version string) *prepared {
	cg := &cgroup{version: version, name: fmt.Sprintf("dice-%d", os.Getpid())}
	if err := cg.make(); err != nil {
		cg.remove()
		return nil
	}
	var fds []int
	closeAll := func() {
		for _, fd := range fds {
			syscall.Close(fd)
		}
	}
	null, err := syscall.Open(os.DevNull, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		cg.remove()
		return nil
	}
	fds = append(fds, null)
	var ends [6]int // out, err, info: read and write ends
	for i := 0; i < 3; i++ {
		r, w, err := pipe()
		if err != nil {
			closeAll()
			cg.remove()
			return nil
		}
		ends[2*i], ends[2*i+1] = r, w
		fds = append(fds, r, w)
	}
	e, err := launchEnter([3]int{null, ends[1], ends[3]}, ends[5], true, cg.dirs)
	syscall.Close(null)
	syscall.Close(ends[1])
	syscall.Close(ends[3])
	syscall.Close(ends[5])
	if err != nil {
		syscall.Close(ends[0])
		syscall.Close(ends[2])
		syscall.Close(ends[4])
		cg.remove()
		return nil
	}
	return &prepared{cg: cg, enter: e, outR: ends[0], errR: ends[2], infoR: ends[4]}
}

// taken: it became the command (its descriptors and cgroup are the shim's now).
func (p *prepared) taken() { p.enter = nil }

// discard: not used: let it go and remove its cgroup. A no-op once taken, or on nil.
func (p *prepared) discard() {
	if p == nil || p.enter == nil {
		return
	}
	p.enter.discard()
	p.enter = nil
	for _, fd := range []int{p.outR, p.errR, p.infoR} {
		syscall.Close(fd)
	}
	p.cg.remove()
}

func stdinWaiting() bool {
	var set syscall.FdSet
	set.Bits[0] = 1
	tv := syscall.Timeval{}
	n, err := syscall.Select(1, &set, nil, nil, &tv)
	return err == nil && n > 0
}

func waitMain() int {
	// Its own session (and process group), as every shim has: made here rather than by the
	// console between its vfork and exec, where setsid() cost the console's starter 1-7 ms a
	// start at times (it makes a scheduling group too) while the console waited for the exec.
	// EPERM: it leads one already (started with a session of its own).
	_, _ = syscall.Setsid()
	var pre *prepared
	if os.Geteuid() == 0 && !stdinWaiting() {
		if version := cgroupVersion(); version != "" {
			pre = prepare(version)
		}
	}
	data, err := io.ReadAll(os.Stdin)
	if err != nil || len(data) == 0 { // the console closed it without a request: not needed
		pre.discard()
		return 0
	}
	var request struct {
		Args []string          `json:"args"`
		Env  map[string]string `json:"env"`
	}
	if err := json.Unmarshal(data, &request); err != nil || request.Env == nil {
		pre.discard()
		why := "no 'env'"
		if err != nil {
			why = err.Error()
		}
		fmt.Fprintf(os.Stderr, "dice-shim: a request needs 'args' (a list) and 'env' (an object): %s\n", why)
		return 2
	}
	os.Clearenv()
	for k, v := range request.Env {
		if err := os.Setenv(k, v); err != nil {
			pre.discard()
			fmt.Fprintf(os.Stderr, "dice-shim: the environment: %s: %v\n", PyRepr(k), err)
			return 2
		}
	}
	if null, err := syscall.Open(os.DevNull, syscall.O_RDONLY, 0); err == nil {
		_ = syscall.Dup3(null, 0, 0)
		syscall.Close(null)
	}
	return shimRun(request.Args, pre)
}
