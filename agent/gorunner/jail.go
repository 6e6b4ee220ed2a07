//go:build shim

// jail.go: a tenant's sandbox as the compiled shim enters it, the same as
// scheduler/local/jail.py (read that file's docstring: what the spec holds is decided by the
// console, scheduler/local/sandbox.py). Here:
//
//  1. the cgroup of one sandbox (v2, or v1's memory, cpu and pids hierarchies), made and limited
//     by the shim (root), joined by the command's process before it execs bubblewrap, removed
//     at the end;
//  2. bubblewrap's command line (jail.bwrap_argv) and environment (jail.sandbox_env);
//  3. `dice-shim _enter`: the command's process. The shim forks it (syscall.ForkExec, its own
//     process group, death with the shim, a private mount namespace when root) and sends it its
//     order on a pipe; it joins the cgroup, sets the rlimits, stages each bind under STAGE (so
//     that bubblewrap, run as the tenant's uid, can reach directories only root may enter),
//     drops to the tenant's uid and gid and execs bubblewrap. Without a sandbox it changes
//     directory, limits its address space, takes the user and execs the command. A failure is
//     written on descriptor 3 (closed on exec: its end tells the shim the exec happened).
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/user"
	"runtime"
	"strconv"
	"strings"
	"syscall"
)

const (
	stageDir   = "/run/dice-sandbox" // jail.STAGE
	cgroupRoot = "/sys/fs/cgroup"
	cpuPeriod  = 100000
)

var (
	systemDirs = []string{"/usr", "/etc", "/opt"}
	usrLinks   = []string{"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"}
)

// sandboxSpec: the JSON spec the console writes (sandbox.Sandboxes.spec).
type sandboxSpec struct {
	raw     map[string]any
	Cgroup  string
	UID     int
	GID     int
	Binds   [][3]string // all_binds: the tenant's passwd and group first
	Dirs    []string
	Bwrap   string
	Host    string
	Home    string
	User    string
	TmpMiB  int64
	MemMiB  int64
	CPU     float64
	Pids    int64
	Nofile  int64
	Nproc   int64
	HasUIDs bool
}

func specNum(v any) float64 {
	switch x := v.(type) {
	case float64:
		return x
	case string:
		f, _ := strconv.ParseFloat(strings.TrimSpace(x), 64)
		return f
	case bool:
		if x {
			return 1
		}
	}
	return 0
}

func specStr(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	return ""
}

func loadSandboxSpec(path string) (*sandboxSpec, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var raw map[string]any
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("sandbox spec %s: %v", path, err)
	}
	s := &sandboxSpec{raw: raw, Cgroup: specStr(raw["cgroup"]), Bwrap: specStr(raw["bwrap"]),
		Host: specStr(raw["hostname"]), Home: specStr(raw["home"]), User: specStr(raw["user"]),
		TmpMiB: int64(specNum(raw["tmp_mib"]))}
	uid, okU := raw["uid"].(float64)
	gid, okG := raw["gid"].(float64)
	if !okU || !okG {
		return nil, fmt.Errorf("sandbox spec %s: no uid or gid", path)
	}
	s.UID, s.GID, s.HasUIDs = int(uid), int(gid), true
	if limits, ok := raw["limits"].(map[string]any); ok {
		s.MemMiB = int64(specNum(limits["mem_mib"]))
		s.CPU = specNum(limits["cpu"])
		s.Pids = int64(specNum(limits["pids"]))
		s.Nofile = int64(specNum(limits["nofile"]))
		s.Nproc = int64(specNum(limits["nproc"]))
	}
	for _, name := range []string{"passwd", "group"} {
		if p := specStr(raw[name]); p != "" {
			s.Binds = append(s.Binds, [3]string{p, "/etc/" + name, "ro"})
		}
	}
	if binds, ok := raw["binds"].([]any); ok {
		for i, b := range binds {
			item, ok := b.([]any)
			if !ok || len(item) != 3 {
				return nil, fmt.Errorf("sandbox spec %s: bind %d is not [source, destination, mode]", path, i)
			}
			s.Binds = append(s.Binds, [3]string{specStr(item[0]), specStr(item[1]), specStr(item[2])})
		}
	}
	if dirs, ok := raw["dirs"].([]any); ok {
		for _, d := range dirs {
			s.Dirs = append(s.Dirs, specStr(d))
		}
	}
	if s.TmpMiB <= 0 {
		s.TmpMiB = 1024
	}
	if s.Home == "" {
		s.Home = "/home/sandbox"
	}
	if s.User == "" {
		s.User = "sandbox"
	}
	if s.Host == "" {
		s.Host = "sandbox"
	}
	if s.Bwrap == "" {
		s.Bwrap = "bwrap"
	}
	return s, nil
}

// ---- cgroups ---------------------------------------------------------------------------------

// ownCgroup: this process's cgroup path in the hierarchy of controller ("" for v2).
func ownCgroup(controller string) string {
	data, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "/"
	}
	for _, line := range strings.Split(strings.TrimRight(string(data), "\n"), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if controller == "" && parts[1] == "" {
			return parts[2]
		}
		if controller != "" {
			for _, n := range strings.Split(parts[1], ",") {
				if n == controller {
					return parts[2]
				}
			}
		}
	}
	return "/"
}

type cgroup struct {
	version     string
	name        string
	dirs        []string
	controllers map[string]bool
}

func writeFile(path, text string) error {
	fd, err := syscall.Open(path, syscall.O_WRONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer syscall.Close(fd)
	if _, err := syscall.Write(fd, []byte(text)); err != nil {
		return &os.PathError{Op: "write", Path: path, Err: err}
	}
	return nil
}

func (c *cgroup) dir(path string) error {
	if err := syscall.Mkdir(path, 0o755); err != nil && err != syscall.EEXIST {
		return &os.PathError{Op: "mkdir", Path: path, Err: err}
	}
	for _, d := range c.dirs {
		if d == path {
			return nil
		}
	}
	c.dirs = append(c.dirs, path)
	return nil
}

// create: the cgroup(s) with the sandbox's limits (jail.Cgroup.create).
func (c *cgroup) create(memMiB int64, cpu float64, pids int64) error {
	c.controllers = map[string]bool{}
	if c.version == "v2" {
		parent := cgroupRoot + strings.TrimRight(ownCgroup(""), "/")
		data, err := os.ReadFile(parent + "/cgroup.subtree_control")
		if err != nil {
			return err
		}
		enabled := map[string]bool{}
		for _, f := range strings.Fields(string(data)) {
			enabled[f] = true
		}
		path := parent + "/" + c.name
		if err := c.dir(path); err != nil {
			return err
		}
		if enabled["memory"] && memMiB > 0 {
			if err := writeFile(path+"/memory.max", strconv.FormatInt(memMiB*1024*1024, 10)); err != nil {
				return err
			}
			_ = writeFile(path+"/memory.swap.max", "0")
			c.controllers["memory"] = true
		}
		if enabled["cpu"] && cpu > 0 {
			if err := writeFile(path+"/cpu.max", fmt.Sprintf("%d %d", int64(cpu*cpuPeriod), cpuPeriod)); err != nil {
				return err
			}
			c.controllers["cpu"] = true
		}
		if enabled["pids"] && pids > 0 {
			if err := writeFile(path+"/pids.max", strconv.FormatInt(pids, 10)); err != nil {
				return err
			}
			c.controllers["pids"] = true
		}
		return nil
	}
	if c.version != "v1" {
		return nil
	}
	type setting struct{ key, value string }
	var memory, cpus, procs []setting
	if memMiB > 0 {
		limit := strconv.FormatInt(memMiB*1024*1024, 10)
		// memsw (memory + swap) after memory and never below it; absent without swap accounting
		memory = []setting{{"memory.limit_in_bytes", limit}, {"memory.memsw.limit_in_bytes", limit}, {"memory.swappiness", "0"}}
	}
	if cpu > 0 {
		cpus = []setting{{"cpu.cfs_period_us", strconv.Itoa(cpuPeriod)}, {"cpu.cfs_quota_us", strconv.FormatInt(int64(cpu*cpuPeriod), 10)}}
	}
	if pids > 0 {
		procs = []setting{{"pids.max", strconv.FormatInt(pids, 10)}}
	}
	for _, group := range []struct {
		controller string
		settings   []setting
	}{{"memory", memory}, {"cpu", cpus}, {"pids", procs}} {
		if len(group.settings) == 0 {
			continue
		}
		path := cgroupRoot + "/" + group.controller + strings.TrimRight(ownCgroup(group.controller), "/") + "/" + c.name
		if err := c.dir(path); err != nil {
			return err
		}
		for _, s := range group.settings {
			if _, err := os.Stat(path + "/" + s.key); err == nil {
				if err := writeFile(path+"/"+s.key, s.value); err != nil {
					return err
				}
			}
		}
		c.controllers[group.controller] = true
	}
	return nil
}

// cgroupVersion: jail.cgroup_version, "v2", "v1" or "".
func cgroupVersion() string {
	if data, err := os.ReadFile(cgroupRoot + strings.TrimRight(ownCgroup(""), "/") + "/cgroup.subtree_control"); err == nil {
		have := map[string]bool{}
		for _, f := range strings.Fields(string(data)) {
			have[f] = true
		}
		if have["memory"] && have["pids"] {
			return "v2"
		}
	}
	for _, c := range []string{"memory", "pids", "cpu"} {
		if !isDirPath(cgroupRoot + "/" + c) {
			return ""
		}
	}
	return "v1"
}

// make: every directory a sandbox's limits may need, without limits yet (jail.Cgroup.make):
// what a waiting shim makes ahead of its request.
func (c *cgroup) make() error {
	if c.version == "v2" {
		return c.dir(cgroupRoot + strings.TrimRight(ownCgroup(""), "/") + "/" + c.name)
	}
	for _, controller := range []string{"memory", "cpu", "pids"} {
		if err := c.dir(cgroupRoot + "/" + controller + strings.TrimRight(ownCgroup(controller), "/") + "/" + c.name); err != nil {
			return err
		}
	}
	return nil
}

// remove: rmdir; a cgroup whose last processes are still exiting refuses, and the console's
// sweep (jail.sweep_cgroups) removes it later: the shim does not wait.
func (c *cgroup) remove() {
	for _, d := range c.dirs {
		_ = syscall.Rmdir(d)
	}
}

// ---- bubblewrap --------------------------------------------------------------------------------

func isDirPath(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// bwrapArgv: jail.bwrap_argv.
func bwrapArgv(s *sandboxSpec, argv []string, cwd string, infoFD int, staged bool) []string {
	out := []string{s.Bwrap, "--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
		"--unshare-cgroup-try", "--disable-userns", "--die-with-parent", "--new-session", "--hostname", s.Host}
	for _, p := range systemDirs {
		if isDirPath(p) {
			out = append(out, "--ro-bind", p, p)
		}
	}
	for _, p := range usrLinks {
		if st, err := os.Lstat(p); err == nil && st.Mode()&os.ModeSymlink != 0 {
			if target, err := os.Readlink(p); err == nil {
				out = append(out, "--symlink", target, p)
			}
		} else if isDirPath(p) {
			out = append(out, "--ro-bind", p, p)
		}
	}
	out = append(out, "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/dev/shm")
	size := strconv.FormatInt(s.TmpMiB*1024*1024, 10)
	out = append(out, "--size", size, "--tmpfs", "/tmp", "--size", size, "--tmpfs", "/var/tmp", "--size", size, "--tmpfs", s.Home)
	for i, b := range s.Binds {
		flag := "--ro-bind"
		if b[2] == "rw" {
			flag = "--bind"
		}
		source := b[0]
		if staged {
			source = fmt.Sprintf("%s/%d", stageDir, i)
		}
		out = append(out, flag, source, b[1])
	}
	for _, d := range s.Dirs {
		out = append(out, "--dir", d)
	}
	out = append(out, "--remount-ro", "/")
	if cwd != "" {
		out = append(out, "--chdir", cwd)
	}
	if infoFD >= 0 {
		out = append(out, "--info-fd", strconv.Itoa(infoFD))
	}
	out = append(out, "--")
	return append(out, argv...)
}

// envSet: KEY=VALUE list with k set to v (replaced in place, or appended).
func envSet(env []string, k, v string) []string {
	for i, kv := range env {
		if strings.HasPrefix(kv, k+"=") {
			env[i] = k + "=" + v
			return env
		}
	}
	return append(env, k+"="+v)
}

func sandboxEnv(s *sandboxSpec, env []string) []string {
	env = append([]string(nil), env...)
	env = envSet(env, "HOME", s.Home)
	env = envSet(env, "TMPDIR", "/tmp")
	env = envSet(env, "USER", s.User)
	return envSet(env, "LOGNAME", s.User)
}

// ---- the command's process: dice-shim _enter ------------------------------------------------------

// enterOrder: what the shim sends its command's process on descriptor 4.
type enterOrder struct {
	Argv        []string    `json:"argv"`
	Env         []string    `json:"env"`
	Sandbox     bool        `json:"sandbox"`
	Shim        int         `json:"shim"`
	Cgroups     []string    `json:"cgroups"`
	Controllers []string    `json:"controllers"`
	MemMiB      int64       `json:"mem_mib"`
	Nofile      int64       `json:"nofile"`
	Nproc       int64       `json:"nproc"`
	Binds       [][3]string `json:"binds"`
	Staged      bool        `json:"staged"`
	UID         int         `json:"uid"`
	GID         int         `json:"gid"`
	Cwd         string      `json:"cwd"`
	User        string      `json:"user"`
	Priority    string      `json:"priority"`
	Joined      bool        `json:"joined"`
}

const (
	enterFail    = 3
	enterOrderFD = 4
)

func enterMain() {
	runtime.LockOSThread() // prctl and exec on this one thread
	runtime.GOMAXPROCS(1)
	syscall.CloseOnExec(enterFail)
	syscall.CloseOnExec(enterOrderFD)
	var joinFailure error
	if len(os.Args) > 3 && os.Args[2] == "--join" { // prepared ahead of its order (prepared.go)
		joinFailure = joinCgroups(os.Args[3:])
	}
	err := enter(joinFailure)
	text := "cannot start"
	if err != nil {
		text = OSErrorText(err, "")
	}
	_, _ = syscall.Write(enterFail, []byte(text))
	os.Exit(127)
}

func mount(source, target, fstype string, flags uintptr, data string) error {
	if err := syscall.Mount(source, target, fstype, flags, data); err != nil {
		return fmt.Errorf("mount %s on %s: %s", source, target, errnoText(err.(syscall.Errno)))
	}
	return nil
}

func setrlimit(resource int, value int64) error {
	lim := syscall.Rlimit{Cur: uint64(value), Max: uint64(value)}
	if err := syscall.Setrlimit(resource, &lim); err != nil {
		return fmt.Errorf("setrlimit %d: %s", resource, errnoText(err.(syscall.Errno)))
	}
	return nil
}

const rlimitAS, rlimitNproc, rlimitCore = 9, 6, 4

// joinCgroups: move this process (and all it starts) into the cgroup directories.
func joinCgroups(dirs []string) error {
	for _, d := range dirs {
		if err := writeFile(d+"/cgroup.procs", strconv.Itoa(os.Getpid())); err != nil {
			return fmt.Errorf("cannot join the sandbox's cgroup: %v", err)
		}
	}
	return nil
}

func enter(joinFailure error) error {
	var data []byte
	buf := make([]byte, 65536)
	for { // plain reads on this thread: the order is usually in the pipe already
		n, err := syscall.Read(enterOrderFD, buf)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return &os.PathError{Op: "read", Path: "the order", Err: err}
		}
		if n == 0 {
			break
		}
		data = append(data, buf[:n]...)
	}
	if len(data) == 0 {
		os.Exit(0) // no order: the start was given up
	}
	if joinFailure != nil {
		return joinFailure
	}
	var o enterOrder
	if err := json.Unmarshal(data, &o); err != nil {
		return fmt.Errorf("bad order: %v", err)
	}
	if err := setPriority(o.Priority); err != nil { // a prepared process was forked before the shim took it
		return err
	}
	if len(o.Argv) == 0 {
		return errors.New("no command")
	}
	// Every signal at its default in the command, as in a container: exec resets what this
	// process handles, and the Go runtime handles all but SIGHUP and SIGINT when those were
	// ignored where it started (runner.go defaultSignalsInChild).
	defaultSignalsInChild()
	program := o.Argv[0]
	controllers := map[string]bool{}
	for _, c := range o.Controllers {
		controllers[c] = true
	}
	setAS := o.MemMiB > 0 && (!o.Sandbox || !controllers["memory"])
	if o.Sandbox {
		if err := syscall.Chdir("/"); err != nil {
			return err
		}
		if !o.Joined {
			if err := joinCgroups(o.Cgroups); err != nil {
				return err
			}
		}
		if o.Nofile > 0 {
			if err := setrlimit(syscall.RLIMIT_NOFILE, o.Nofile); err != nil {
				return err
			}
		}
		if o.Nproc > 0 && !controllers["pids"] {
			if err := setrlimit(rlimitNproc, o.Nproc); err != nil {
				return err
			}
		}
		if err := setrlimit(rlimitCore, 0); err != nil {
			return err
		}
		if o.Staged {
			if err := stage(o.Binds); err != nil {
				return err
			}
		}
		if os.Geteuid() == 0 {
			// On this thread alone (enterMain locked it, and it execs): a process execs with its
			// exec'ing thread's credentials, and the exec ends the others. syscall.Setresuid and
			// the like change every thread of the runtime (a signal to each, ~0.3 ms a start).
			if _, _, e := syscall.RawSyscall(syscall.SYS_SETGROUPS, 0, 0, 0); e != 0 { // no supplementary groups
				return fmt.Errorf("setgroups: %v", e)
			}
			if _, _, e := syscall.RawSyscall(syscall.SYS_SETRESGID, uintptr(o.GID), uintptr(o.GID), uintptr(o.GID)); e != 0 {
				return fmt.Errorf("setresgid: %v", e)
			}
			if _, _, e := syscall.RawSyscall(syscall.SYS_SETRESUID, uintptr(o.UID), uintptr(o.UID), uintptr(o.UID)); e != 0 {
				return fmt.Errorf("setresuid: %v", e)
			}
		}
	} else {
		if o.Cwd != "" {
			if err := syscall.Chdir(o.Cwd); err != nil {
				return &os.PathError{Op: "chdir", Path: o.Cwd, Err: err}
			}
		}
		if o.User != "" {
			u, err := user.Lookup(o.User)
			if err != nil {
				return fmt.Errorf("getpwnam(): name not found: %s", PyRepr(o.User))
			}
			uid, _ := strconv.Atoi(u.Uid)
			gid, _ := strconv.Atoi(u.Gid)
			if err := syscall.Setgroups([]int{}); err != nil {
				return err
			}
			if err := syscall.Setgid(gid); err != nil {
				return err
			}
			if err := syscall.Setuid(uid); err != nil {
				return err
			}
		}
		found, err := lookPathIn(program, envGet(o.Env, "PATH"))
		if err != nil {
			return err
		}
		program = found
	}
	// After the user change (a credential change clears it): die with the shim.
	if _, _, e := syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_SET_PDEATHSIG, uintptr(syscall.SIGKILL), 0); e != 0 {
		return fmt.Errorf("prctl: %s", errnoText(e))
	}
	if syscall.Getppid() != o.Shim {
		os.Exit(137) // the shim died before prctl took effect
	}
	if setAS {
		// Last before the exec, which allocates only its arguments' few bytes (from the heap
		// this process already has) and restores the descriptor limit Go raised at its start.
		if err := setrlimit(rlimitAS, o.MemMiB*1024*1024); err != nil {
			return err
		}
	}
	err := syscall.Exec(program, o.Argv, o.Env)
	return &os.PathError{Op: "exec", Path: program, Err: err}
}

// stage: bind i reachable at STAGE/i by any user, in this process's private mount namespace
// (made at its fork; / already private there).
func stage(binds [][3]string) error {
	if err := mount("tmpfs", stageDir, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, "mode=0755,size=64k"); err != nil {
		return err
	}
	for i, b := range binds {
		point := fmt.Sprintf("%s/%d", stageDir, i)
		if isDirPath(b[0]) {
			if err := syscall.Mkdir(point, 0o755); err != nil {
				return &os.PathError{Op: "mkdir", Path: point, Err: err}
			}
		} else {
			fd, err := syscall.Open(point, syscall.O_WRONLY|syscall.O_CREAT|syscall.O_CLOEXEC, 0o644)
			if err != nil {
				return &os.PathError{Op: "open", Path: point, Err: err}
			}
			syscall.Close(fd)
		}
		if err := mount(b[0], point, "", syscall.MS_BIND|syscall.MS_REC, ""); err != nil {
			return err
		}
	}
	return nil
}

func envGet(env []string, k string) string {
	for _, kv := range env {
		if strings.HasPrefix(kv, k+"=") {
			return kv[len(k)+1:]
		}
	}
	return ""
}

// lookPathIn: os.execvpe's search, in the command's own PATH (os.defpath without one).
func lookPathIn(name, path string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	if path == "" {
		path = "/bin:/usr/bin"
	}
	var last error = syscall.ENOENT
	for _, dir := range strings.Split(path, ":") {
		candidate := pyJoin(dir, name)
		if err := syscall.Access(candidate, 1); err == nil {
			if st, err := os.Stat(candidate); err == nil && !st.IsDir() {
				return candidate, nil
			}
			last = syscall.EACCES
		} else if err != syscall.ENOENT && err != syscall.ENOTDIR {
			last = err
		}
	}
	return "", &os.PathError{Op: "exec", Path: name, Err: last}
}
