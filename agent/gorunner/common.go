// common.go: what the step runner (runner.go) and the shim (shim.go, jail.go) both use.
package main

import (
	"os"
	"os/signal"
	"syscall"
	"time"
)

func pyTime() float64 { return float64(time.Now().UnixNano()) / 1e9 }

// inheritedIgnores holds SIGHUP and SIGINT when they were ignored where the runner started.
var inheritedIgnores = make(chan os.Signal, 1)

// defaultSignalsInChild makes every signal start at its default in the step, as a container's
// process does and as the Python agent's posix_spawn (setsigdef: all) gives it. exec resets what
// this process handles, and the Go runtime handles every signal but SIGHUP and SIGINT when they
// were ignored at its start (a console started in the background has SIGINT ignored, and an
// ignored signal stays ignored through exec): handling those two as well (their notices are
// dropped, so the runner goes on ignoring them) leaves none ignored in the child.
func defaultSignalsInChild() {
	for _, sig := range []os.Signal{syscall.SIGHUP, syscall.SIGINT} {
		if signal.Ignored(sig) {
			signal.Notify(inheritedIgnores, sig)
		}
	}
}
