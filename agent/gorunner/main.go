//go:build !shim

// dice-step: the step agent's `run` (agent/runner.py) as one static program, for the local
// cluster. Same spec, same log lines, same result file, same notification: the console cannot
// tell which of the two ran a step. What it does not do itself it leaves to the Python agent,
// which it execs in its place (DICE_AGENT_PYTHON names the interpreter): caches (tar.gz restore
// and store, agent/safetar.py's rules), and a spec without what the console renders for it in
// Python (`mask_forms` for secrets, `script` for a git-checkout). The Kubernetes agent
// (restore, sidecar: agent/pod.py) stays Python.
//
//	dice-step run --spec step.json
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
)

const (
	usage       = "usage: dice-step run --spec SPEC"
	fallbackVar = "DICE_AGENT_PYTHON"
	// agent.steps' boot line: the Python agent without runpy (scheduler/local/steps.py AGENT_BOOT)
	pythonBoot = "import sys; from agent import main; sys.exit(main())"
)

func parseArgs(argv []string) (string, string) {
	if len(argv) == 0 || argv[0] == "-h" || argv[0] == "--help" {
		text := usage + "\n\n  run      run one step from its spec file (the Python agent: restore, sidecar)\n"
		if len(argv) == 0 {
			fmt.Fprint(os.Stderr, text)
			os.Exit(2)
		}
		fmt.Print(text)
		os.Exit(0)
	}
	command, rest := argv[0], argv[1:]
	if command != "run" && command != "_parity" {
		fmt.Fprintf(os.Stderr, "%s\ndice-step: error: unknown command %s (only run: restore and sidecar are the Python agent's, python -m agent)\n", usage, PyRepr(command))
		os.Exit(2)
	}
	spec := ""
	for len(rest) > 0 {
		item := rest[0]
		rest = rest[1:]
		switch {
		case item == "--spec" && len(rest) > 0:
			spec, rest = rest[0], rest[1:]
		case strings.HasPrefix(item, "--spec="):
			spec = item[len("--spec="):]
		default:
			fmt.Fprintf(os.Stderr, "%s\ndice-step %s: error: unrecognized argument %s\n", usage, command, PyRepr(item))
			os.Exit(2)
		}
	}
	if spec == "" && command == "run" {
		fmt.Fprintf(os.Stderr, "%s\ndice-step %s: error: the argument --spec is required\n", usage, command)
		os.Exit(2)
	}
	return command, spec
}

// badSpec: the spec cannot be run. Said on stderr, and in a result file (the spec's `result`
// when it names one, else result.json beside the spec) so that the console reads why.
func badSpec(specPath string, result string, problem string) int {
	text := fmt.Sprintf("bad step spec %s: %s", specPath, problem)
	fmt.Fprintln(os.Stderr, "agent: "+text)
	if result == "" {
		result = filepath.Join(filepath.Dir(specPath), "result.json")
	}
	now := pyTime()
	res := &Obj{Keys: []string{"exit_code", "outputs", "started", "finished", "timed_out", "caches", "error", "lines"},
		Vals: map[string]any{"exit_code": 1, "outputs": NewObj(), "started": now, "finished": now,
			"timed_out": false, "caches": []any{}, "error": text, "lines": 0}}
	if err := writeJSONAtomic(result, res); err != nil {
		fmt.Fprintf(os.Stderr, "dice-step: cannot write the result %s: %s\n", result, errorText(err))
	}
	return 1
}

// needsPython: what this program leaves to the Python agent (empty: nothing).
func needsPython(s *Spec) string {
	switch {
	case len(s.Caches) > 0:
		return "caches"
	case strings.HasPrefix(s.Notify, "https://"):
		return "an https notify address"
	case len(s.Mask) > 0 && !s.HasForms:
		return "secrets to mask without their forms (`mask_forms`)"
	case s.Type == "git-checkout" && !s.HasScript:
		return "a git-checkout without its rendered script (`script`)"
	}
	return ""
}

func execPython(specPath string) error {
	python := os.Getenv(fallbackVar)
	if python == "" {
		return fmt.Errorf("%s is not set", fallbackVar)
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	root := filepath.Dir(filepath.Dir(filepath.Dir(exe))) // <root>/agent/bin/dice-step
	env := processEnv()
	env.pop(fallbackVar)
	env.set("PYTHONPATH", root)
	argv := []string{python, "-S", "-P", "-c", pythonBoot, "run", "--spec", specPath}
	return syscall.Exec(python, argv, env.list())
}

func main() {
	runtime.GOMAXPROCS(1) // it waits for its step: a processor per core only started threads to spin
	command, specPath := parseArgs(os.Args[1:])
	if command == "_parity" {
		os.Exit(parity())
	}
	data, err := os.ReadFile(specPath)
	if err != nil {
		os.Exit(badSpec(specPath, "", "cannot read it: "+errorText(err)))
	}
	value, err := Loads(DecodeReplace(data))
	if err != nil {
		os.Exit(badSpec(specPath, "", err.Error()))
	}
	spec, err := ParseSpec(value)
	if err != nil {
		result := ""
		if o, ok := value.(*Obj); ok {
			if r, ok := o.Vals["result"].(string); ok {
				result = r
			}
		}
		os.Exit(badSpec(specPath, result, err.Error()))
	}
	if why := needsPython(spec); why != "" {
		err := execPython(specPath)
		os.Exit(badSpec(specPath, spec.Result, fmt.Sprintf("%s need the Python agent, which cannot start: %s", why, errorText(err))))
	}
	if Run(spec) != 0 {
		os.Exit(1)
	}
}
