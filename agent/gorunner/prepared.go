//go:build shim

// prepared.go: `dice-shim --wait`, the compiled shim started ahead of its request, as the Python
// process starter's waiting child is forked ahead of its (scheduler/local/spawner.py).
//
// The console keeps one waiting: started with nothing but the Go runtime's settings in its
// environment, it holds nothing of any request. While it waits, as root with cgroups, it makes
// the directories of the cgroup its sandbox will be limited by (`dice-<its pid>`, no limits
// yet: a memory cgroup's creation is most of that). The request comes on standard input, one
// JSON object {"args": [the shim's arguments], "env": {the command's environment}}, then the end
// of input. A request for a sandbox in a cgroup of the same version takes the directories (the
// shim writes the limits, then moves bubblewrap into them before it runs: direct.go); any other
// removes them. A request already waiting when the shim starts (a burst) is not kept waiting for
// them: the shim makes them at the request.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"syscall"
)

type prepared struct {
	cg   *cgroup
	used bool
}

// prepare: the sandbox's cgroup directories made ahead (nil where they cannot be).
func prepare(version string) *prepared {
	cg := &cgroup{version: version, name: fmt.Sprintf("dice-%d", os.Getpid())}
	if err := cg.make(); err != nil {
		cg.remove()
		return nil
	}
	return &prepared{cg: cg}
}

// taken: the sandbox's (removed at its end, not here).
func (p *prepared) taken() { p.used = true }

// discard: not used: remove the directories. A no-op once taken, or on nil.
func (p *prepared) discard() {
	if p == nil || p.used {
		return
	}
	p.used = true
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
