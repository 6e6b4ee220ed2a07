//go:build shim

// shim_main.go: the compiled shim alone (agent/bin/dice-shim), built with -tags shim: the shim
// and its command's process (`_enter`) without the step runner's packages (net/http and what it
// brings: their initialisation costs every start ~1 ms of CPU, bench/bench_step_start.py).
//
//	dice-shim ARGS        (shim.go)
package main

import "os"

func main() {
	if len(os.Args) > 1 && os.Args[1] == "_enter" {
		enterMain()
	}
	os.Exit(shimMain(os.Args[1:]))
}
