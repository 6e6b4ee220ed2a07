//go:build shim

// shim.go: `dice-shim ARGS`, the local cluster's per-process shim (scheduler/local/shim.py) as a
// static program (built from this module with -tags shim). Same command line, same log lines, pidfile, exitfile and
// claim, same sandbox (jail.go): the console reads what either wrote the same way. What it
// saves is the start: the Python shim is a forked interpreter (its pages copied on write, its
// exit) and forks again for its command; this one is an exec of a small static program, and its
// command's process (`dice-shim _enter`) another (bench/bench_step_start.py).
//
//	dice-shim --log FILE --pidfile FILE --exitfile FILE [--max-bytes N] [--keep N]
//	        [--mem-mib N] [--user NAME] [--cwd DIR] [--sandbox FILE] [--claim FILE]
//	        [--priority P] -- ARGV...
//	dice-shim --foreground --sandbox FILE [--cwd DIR] -- ARGV...
//
// --priority ("" / normal, idle, or a nice value 1-19) is what the process starter applied to
// the Python shim: this shim applies it to itself, so everything it starts inherits it.
//
//	dice-shim --wait     (a request on standard input: prepared.go)
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

const (
	shimUsage = "usage: dice-shim --log FILE --pidfile FILE --exitfile FILE [--max-bytes N] [--keep N] [--mem-mib N] " +
		"[--user NAME] [--cwd DIR] [--sandbox FILE] [--claim FILE] [--priority P] -- ARGV...\n" +
		"       dice-shim --foreground --sandbox FILE [--cwd DIR] -- ARGV..."
	lineSize       = 65536
	drainAfterExit = 2 * time.Second
	mebi           = 1024 * 1024
)

type shimArgs struct {
	log, pidfile, exitfile, cwd, sandbox, user, claim, priority string
	foreground                                                  bool
	maxBytes, keep, memMiB                                      int64
	command                                                     []string
}

func shimUsageError(message string) {
	fmt.Fprintf(os.Stderr, "%s\ndice-shim: error: %s\n", shimUsage, message)
	os.Exit(2)
}

// parseShimArgs: shim.parse, option for option.
func parseShimArgs(argv []string) *shimArgs {
	a := &shimArgs{maxBytes: 10 * mebi, keep: 3}
	strs := map[string]*string{"--log": &a.log, "--pidfile": &a.pidfile, "--exitfile": &a.exitfile, "--cwd": &a.cwd,
		"--sandbox": &a.sandbox, "--user": &a.user, "--claim": &a.claim, "--priority": &a.priority}
	ints := map[string]*int64{"--max-bytes": &a.maxBytes, "--keep": &a.keep, "--mem-mib": &a.memMiB}
	for i := 0; i < len(argv); i++ {
		item := argv[i]
		if item == "--" {
			a.command = append([]string{}, argv[i+1:]...)
			break
		}
		if item == "--foreground" {
			a.foreground = true
			continue
		}
		name, value, eq := strings.Cut(item, "=")
		s, isStr := strs[name]
		n, isInt := ints[name]
		if isStr || isInt {
			if !eq {
				if i+1 >= len(argv) {
					shimUsageError(fmt.Sprintf("argument %s: expected one argument", name))
				}
				i++
				value = argv[i]
			}
			if isStr {
				*s = value
			} else {
				v, err := strconv.ParseInt(strings.TrimSpace(value), 10, 64)
				if err != nil {
					shimUsageError(fmt.Sprintf("argument %s: invalid int value: %s", name, PyRepr(value)))
				}
				*n = v
			}
			continue
		}
		if strings.HasPrefix(item, "-") {
			shimUsageError("unrecognized arguments: " + item)
		}
		a.command = append([]string{}, argv[i:]...)
		break
	}
	return a
}

// ---- the log -------------------------------------------------------------------------------------

func isASCIIDigits(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// lastNumber: shim.last_number, the number of the last line written to the log (0: a new log).
func lastNumber(path string) int64 {
	for _, candidate := range []string{path, path + ".1"} {
		f, err := os.Open(candidate)
		if err != nil {
			continue
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			continue
		}
		start := st.Size() - 65536
		if start < 0 {
			start = 0
		}
		buf := make([]byte, st.Size()-start)
		n, _ := f.ReadAt(buf, start)
		f.Close()
		// bytes.splitlines: \n, \r and \r\n end a line
		text := strings.ReplaceAll(strings.ReplaceAll(string(buf[:n]), "\r\n", "\n"), "\r", "\n")
		lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
		for i := len(lines) - 1; i >= 0; i-- {
			head, _, _ := strings.Cut(lines[i], "\t")
			if isASCIIDigits([]byte(head)) {
				if v, err := strconv.ParseInt(head, 10, 64); err == nil {
					return v
				}
			}
		}
	}
	return 0
}

type logWriter struct {
	path     string
	maxBytes int64
	keep     int64
	number   int64
	size     int64
	f        *os.File
	mu       sync.Mutex
}

func newLogWriter(path string, maxBytes, keep int64) (*logWriter, error) {
	w := &logWriter{path: path, maxBytes: maxBytes, keep: keep, number: lastNumber(path)}
	if err := w.open(); err != nil {
		return nil, err
	}
	return w, nil
}

func (w *logWriter) open() error {
	f, err := os.OpenFile(w.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o666)
	if err != nil {
		return err
	}
	w.f, w.size = f, 0
	if st, err := f.Stat(); err == nil {
		w.size = st.Size()
	}
	return nil
}

func (w *logWriter) write(stream, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.number++
	line := strconv.FormatInt(w.number, 10) + "\t" + strconv.FormatFloat(pyTime(), 'f', 6, 64) + "\t" + stream + "\t" + text + "\n"
	if w.f == nil {
		return
	}
	n, _ := w.f.WriteString(line)
	w.size += int64(n)
	if w.size >= w.maxBytes {
		w.rotate()
	}
}

func (w *logWriter) rotate() {
	w.f.Close()
	w.f = nil
	for i := w.keep - 1; i > 0; i-- {
		from := fmt.Sprintf("%s.%d", w.path, i)
		if _, err := os.Stat(from); err == nil {
			_ = os.Rename(from, fmt.Sprintf("%s.%d", w.path, i+1))
		}
	}
	if w.keep > 0 {
		_ = os.Rename(w.path, w.path+".1")
	} else {
		_ = os.Remove(w.path)
	}
	_ = w.open()
}

// streamLines: one stream of the command cut into log lines (shim.Lines).
type streamLines struct {
	log    *logWriter
	stream string
	masker *Masker
	buf    []byte
	mu     sync.Mutex
}

func (l *streamLines) emit(piece []byte) {
	text := RstripNewlines(DecodeReplace(piece))
	if l.masker != nil {
		text = l.masker.Line(text, l.stream)
	}
	l.log.write(l.stream, text)
}

func (l *streamLines) feed(data []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, data...)
	for {
		cut := -1
		for i, c := range l.buf {
			if c == '\n' {
				cut = i
				break
			}
		}
		if cut < 0 || cut+1 > lineSize {
			if len(l.buf) < lineSize {
				return
			}
			cut = lineSize - 1
		}
		piece := append([]byte(nil), l.buf[:cut+1]...)
		l.buf = append(l.buf[:0], l.buf[cut+1:]...)
		l.emit(piece)
	}
}

func (l *streamLines) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.buf) > 0 {
		l.emit(l.buf)
		l.buf = nil
	}
}

// takeMasker: the masker of DICE_MASK's secret values with DICE_MASK_FORMS's forms (the
// supervisor sets both, from agent.masking), both removed from the environment first so the
// command never sees them. Without forms, each value masks itself.
func takeMasker() *Masker {
	raw, forms := os.Getenv("DICE_MASK"), os.Getenv("DICE_MASK_FORMS")
	os.Unsetenv("DICE_MASK")
	os.Unsetenv("DICE_MASK_FORMS")
	var values, formList []string
	if raw == "" || json.Unmarshal([]byte(raw), &values) != nil {
		return nil
	}
	var kept []string
	for _, v := range values {
		if v != "" {
			kept = append(kept, v)
		}
	}
	if len(kept) == 0 {
		return nil
	}
	if forms == "" || json.Unmarshal([]byte(forms), &formList) != nil {
		formList = kept
	}
	return NewMasker(kept, formList)
}

// ---- files ---------------------------------------------------------------------------------------

// statFields: the fields of /proc/PID/stat after the command name (which may hold spaces and
// parentheses): [0] the state, [2] the process group, [19] the start time; nil if it is gone.
func statFields(pid int) []string {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	text := string(data)
	return strings.Fields(text[strings.LastIndex(text, ")")+1:])
}

func procStartTime(pid int) any {
	fields := statFields(pid)
	if len(fields) < 20 {
		return nil
	}
	v, err := strconv.ParseInt(fields[19], 10, 64)
	if err != nil {
		return nil
	}
	return v
}

// claim: shim.claim. False: the start was given up before this shim took it.
func claim(path string) (bool, error) {
	pid := os.Getpid()
	tmp := fmt.Sprintf("%s.%d", path, pid)
	data, _ := json.Marshal(map[string]any{"shim": pid, "start_time": procStartTime(pid)})
	if err := os.WriteFile(tmp, data, 0o666); err != nil {
		return false, err
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, path); err != nil {
		if os.IsExist(err) {
			return false, nil
		}
		return false, err
	}
	return true, nil
}

// writeJSON: shim.write_json, the keys in the order given.
func writeJSON(path string, keys []string, values map[string]any) {
	var b strings.Builder
	b.WriteString("{")
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		kj, _ := json.Marshal(k)
		vj, _ := json.Marshal(values[k])
		b.Write(kj)
		b.WriteString(": ")
		b.Write(vj)
	}
	b.WriteString("}")
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o666); err != nil {
		return
	}
	_ = os.Rename(tmp, path)
}

// ---- the sandbox, the shim's side ------------------------------------------------------------------

type sandboxed struct {
	spec    *sandboxSpec
	cg      *cgroup
	initPid int
	infoR   *os.File
}

func newSandboxed(specPath string, pre *prepared) (*sandboxed, error) {
	spec, err := loadSandboxSpec(specPath)
	if err != nil {
		return nil, err
	}
	box := &sandboxed{spec: spec}
	if spec.Cgroup != "" && os.Geteuid() == 0 {
		use := pre != nil && pre.enter != nil && pre.cg.version == spec.Cgroup
		cg := &cgroup{version: spec.Cgroup, name: fmt.Sprintf("dice-%d", os.Getpid())}
		if use {
			cg = pre.cg
		}
		if err := cg.create(spec.MemMiB, spec.CPU, spec.Pids); err == nil {
			box.cg = cg
		} else if !use {
			cg.remove() // no cgroup here after all: rlimits instead
		}
	}
	return box, nil
}

// readInit: bubblewrap's info (its init, pid 1 inside); 0 if it failed.
func (b *sandboxed) readInit() int {
	if b.infoR == nil {
		return 0
	}
	defer func() { b.infoR.Close(); b.infoR = nil }()
	var raw []byte
	buf := make([]byte, 4096)
	for {
		n, err := b.infoR.Read(buf)
		raw = append(raw, buf[:n]...)
		var info map[string]any
		if json.Unmarshal(raw, &info) == nil {
			if pid, ok := info["child-pid"].(float64); ok {
				b.initPid = int(pid)
			}
			return b.initPid
		}
		if err != nil {
			return 0
		}
	}
}

func (b *sandboxed) end() {
	if b.initPid > 0 {
		_ = syscall.Kill(b.initPid, syscall.SIGKILL) // the pid namespace and all in it
	}
	if b.cg != nil {
		b.cg.remove()
	}
}

// commandWatch: jail.CommandWatch, the sandboxed command's host pid (the child of the sandbox's
// init), looked for at growing intervals.
type commandWatch struct {
	initPid  int
	deadline time.Time
	interval time.Duration
	done     bool
	pid      int
}

func newCommandWatch(initPid int) *commandWatch {
	return &commandWatch{initPid: initPid, deadline: time.Now().Add(5 * time.Second), interval: 4 * time.Millisecond}
}

func (w *commandWatch) look() bool {
	if w.done {
		return true
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", w.initPid, w.initPid))
	if err != nil {
		w.done = true // init is gone: so is the command
	} else if kids := strings.Fields(string(data)); len(kids) > 0 {
		w.pid, _ = strconv.Atoi(kids[0])
		w.done = true
	} else if stat := statFields(w.initPid); len(stat) == 0 || stat[0] == "Z" || stat[0] == "X" {
		w.done = true // gone, or a command that already ended
	}
	if !w.done && !time.Now().Before(w.deadline) {
		w.done = true
	}
	w.interval = min(w.interval*2, 50*time.Millisecond) // jail.CommandWatch's FIRST and EVERY
	return w.done
}

// processGroup: field 5 of /proc/PID/stat (0: gone).
func processGroup(pid int) int {
	fields := statFields(pid)
	if len(fields) < 3 {
		return 0
	}
	g, _ := strconv.Atoi(fields[2])
	return g
}

// ---- starting the command ----------------------------------------------------------------------------

func pipe() (r, w int, err error) {
	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC); err != nil {
		return 0, 0, err
	}
	return p[0], p[1], nil
}

func commandEnv() []string {
	env := []string{}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DICE_MASK=") && !strings.HasPrefix(kv, "DICE_MASK_FORMS=") {
			env = append(env, kv)
		}
	}
	return env
}

// enterProc: a `dice-shim _enter` process (the command's), forked with its standard streams,
// waiting for its order.
type enterProc struct {
	pid    int
	failR  int
	orderW int
}

// launchEnter: fork `dice-shim _enter` with stdio (three descriptors) and bubblewrap's info pipe
// (infoW, -1 for none); `join`: the cgroup directories it moves into at once, before its order.
func launchEnter(stdio [3]int, infoW int, privateMounts bool, join []string) (*enterProc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	failR, failW, err := pipe()
	if err != nil {
		return nil, err
	}
	orderR, orderW, err := pipe()
	if err != nil {
		syscall.Close(failR)
		syscall.Close(failW)
		return nil, err
	}
	files := []uintptr{uintptr(stdio[0]), uintptr(stdio[1]), uintptr(stdio[2]), uintptr(failW), uintptr(orderR)}
	if infoW >= 0 {
		files = append(files, uintptr(infoW))
	}
	sys := &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if privateMounts {
		sys.Unshareflags = syscall.CLONE_NEWNS
	}
	argv := []string{"dice-shim", "_enter"}
	if len(join) > 0 {
		argv = append(append(argv, "--join"), join...)
	}
	pid, err := syscall.ForkExec(exe, argv, &syscall.ProcAttr{Env: goEnv, Files: files, Sys: sys})
	syscall.Close(failW)
	syscall.Close(orderR)
	if err != nil {
		syscall.Close(failR)
		syscall.Close(orderW)
		return nil, err
	}
	return &enterProc{pid: pid, failR: failR, orderW: orderW}, nil
}

// send: the order, then wait until the process exec'd (its failure pipe ends) or failed.
func (e *enterProc) send(order *enterOrder) (int, error) {
	order.Shim = os.Getpid()
	data, _ := json.Marshal(order)
	if len(data) <= 60000 { // the pipe holds it: its reader never waits
		_, _ = syscall.Write(e.orderW, data)
		syscall.Close(e.orderW)
	} else {
		go func(w int) {
			f := os.NewFile(uintptr(w), "order")
			_, _ = f.Write(data)
			f.Close()
		}(e.orderW)
	}
	e.orderW = -1
	failure, _ := io.ReadAll(os.NewFile(uintptr(e.failR), "fail"))
	e.failR = -1
	if len(failure) > 0 {
		var ws syscall.WaitStatus
		_, _ = syscall.Wait4(e.pid, &ws, 0, nil)
		return 0, fmt.Errorf("%s", DecodeReplace(failure))
	}
	return e.pid, nil
}

// discard: the end of its order pipe without an order: it exits.
func (e *enterProc) discard() {
	if e.orderW >= 0 {
		syscall.Close(e.orderW)
	}
	if e.failR >= 0 {
		syscall.Close(e.failR)
	}
	var ws syscall.WaitStatus
	_, _ = syscall.Wait4(e.pid, &ws, 0, nil)
}

// goEnv: the Go runtime's settings for this program's own processes (the shim, `_enter`): one
// processor, no collector, no look at the cgroup's CPU limit (Go's container-aware GOMAXPROCS
// opens cgroup files at each start). Each start is a short-lived or mostly waiting process; at a processor
// per core the runtime started threads to spin for work that never came, a start's largest cost.
var goEnv = []string{"GOMAXPROCS=1", "GOGC=off", "GODEBUG=containermaxprocs=0,updatemaxprocs=0"}

// ---- following the command -------------------------------------------------------------------------

func pollable(fd int) *os.File {
	_ = syscall.SetNonblock(fd, true)
	return os.NewFile(uintptr(fd), "stream")
}

// follow: shim.follow. The streams logged as they come; when the command ends, ended() runs and
// the streams are read for up to drainAfterExit more; if they end first, the command is waited
// for. The command's wait status.
func follow(pid int, streams map[*os.File]*streamLines, childSignals chan os.Signal, ended func(), streamsEnded func()) syscall.WaitStatus {
	var wg sync.WaitGroup
	for f, l := range streams {
		wg.Add(1)
		go func(f *os.File, l *streamLines) {
			defer wg.Done()
			buf := make([]byte, lineSize)
			for {
				n, err := f.Read(buf)
				if n > 0 {
					l.feed(buf[:n])
				}
				if err != nil {
					return
				}
			}
		}(f, l)
	}
	readersDone := make(chan struct{})
	go func() { wg.Wait(); close(readersDone) }()
	// The command's end: looked for at each SIGCHLD (a notice, not a thread blocked in wait4).
	statusCh := make(chan syscall.WaitStatus, 1)
	go func() {
		defer signal.Stop(childSignals)
		for {
			var ws syscall.WaitStatus
			got, err := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
			if got == pid || (err != nil && err != syscall.EINTR) {
				statusCh <- ws
				return
			}
			<-childSignals
		}
	}()
	var status syscall.WaitStatus
	select {
	case status = <-statusCh:
		ended()
		select {
		case <-readersDone:
		case <-time.After(drainAfterExit):
		}
		streamsEnded() // a command that ended before it was seen: the bubblewrap process stands for it
	case <-readersDone:
		streamsEnded()
		status = <-statusCh
		ended()
	}
	for f := range streams {
		f.Close() // a reader still waiting returns
	}
	<-readersDone
	for _, l := range streams {
		l.close()
	}
	return status
}

// exitStatus: shim.exit_status, (code, signal) of the command; bubblewrap reports a command
// killed by signal N as exit 128+N.
func exitStatus(rc int, sandboxed bool) (any, any) {
	if rc < 0 {
		return nil, -rc
	}
	if sandboxed && rc > 128 && rc < 128+65 {
		return nil, rc - 128
	}
	return rc, nil
}

func waitRC(ws syscall.WaitStatus) int {
	if ws.Signaled() {
		return -int(ws.Signal())
	}
	return ws.ExitStatus()
}

// setPriority: spawner._set_priority, on every thread of this process (Linux keeps the policy
// and the nice value per thread; what this shim forks inherits its forking thread's).
func setPriority(priority string) error {
	priority = strings.TrimSpace(priority)
	if priority == "" || priority == "0" || priority == "normal" {
		return nil
	}
	tasks, _ := os.ReadDir("/proc/self/task")
	apply := func(each func(tid int) syscall.Errno) syscall.Errno {
		var last syscall.Errno
		for _, t := range tasks {
			if tid, err := strconv.Atoi(t.Name()); err == nil {
				if e := each(tid); e != 0 {
					last = e
				}
			}
		}
		return last
	}
	if priority == "idle" {
		param := [1]int32{0}
		if apply(func(tid int) syscall.Errno {
			_, _, e := syscall.RawSyscall(syscall.SYS_SCHED_SETSCHEDULER, uintptr(tid), 5 /* SCHED_IDLE */, uintptr(unsafePointer(&param[0])))
			return e
		}) == 0 {
			return nil
		}
		priority = "19"
	}
	nice, err := strconv.Atoi(priority)
	if err != nil || nice < 1 || nice > 19 {
		return fmt.Errorf("job priority %s: use idle, normal or a nice value 1-19", PyRepr(priority))
	}
	apply(func(tid int) syscall.Errno {
		if err := syscall.Setpriority(syscall.PRIO_PROCESS, tid, nice); err != nil {
			return err.(syscall.Errno)
		}
		return 0
	})
	return nil
}

// ---- main ------------------------------------------------------------------------------------------------

func shimMain(argv []string) int {
	runtime.GOMAXPROCS(1) // as goEnv, where the caller did not give it
	if len(argv) == 1 && argv[0] == "--wait" {
		return waitMain()
	}
	return shimRun(argv, nil)
}

// shimRun: the shim with its arguments; `pre`: what a waiting shim made ahead (or nil).
func shimRun(argv []string, pre *prepared) int {
	defer pre.discard() // unless it became the command
	a := parseShimArgs(argv)
	if err := setPriority(a.priority); err != nil {
		shimUsageError(err.Error())
	}
	if a.foreground {
		return shimForeground(a)
	}
	if a.log == "" || a.pidfile == "" || a.exitfile == "" {
		shimUsageError("--log, --pidfile and --exitfile are required")
	}
	if a.claim != "" {
		taken, err := claim(a.claim)
		if err != nil {
			fmt.Fprintf(os.Stderr, "dice-shim: cannot take the claim %s: %s\n", a.claim, OSErrorText(err, ""))
			return 1
		}
		if !taken {
			return 0 // given up by the console before this shim took it: started again elsewhere
		}
	}
	log, err := newLogWriter(a.log, a.maxBytes, a.keep)
	if err != nil {
		fmt.Fprintf(os.Stderr, "dice-shim: cannot open the log: %s\n", OSErrorText(err, ""))
		return 1
	}
	masker := takeMasker()
	command := a.command
	name := "(nothing)"
	if len(command) > 0 {
		name = command[0]
	}
	var box *sandboxed
	fail := func(err error) int {
		text := OSErrorText(err, "")
		log.write("stderr", fmt.Sprintf("cannot start %s: %s", name, text))
		writeJSON(a.exitfile, []string{"code", "signal", "time", "error"},
			map[string]any{"code": 127, "signal": nil, "time": pyTime(), "error": text})
		if box != nil {
			box.end()
		}
		return 127
	}
	if len(command) == 0 {
		return fail(fmt.Errorf("no command"))
	}
	if a.sandbox != "" {
		if box, err = newSandboxed(a.sandbox, pre); err != nil {
			return fail(err)
		}
	}
	if pre != nil && (box == nil || box.cg != pre.cg) {
		pre.discard() // before the command: its cgroup's name is the command's, if any
	}
	childSignals := make(chan os.Signal, 1) // before the command exists: its end is never missed
	signal.Notify(childSignals, syscall.SIGCHLD)
	pid, outR, errR, err := startCommand(a, box, command, pre)
	if err != nil {
		return fail(err)
	}
	// The group to signal: the command's own (in a sandbox it leads its own session, and its host
	// pid is known only once bubblewrap has set the sandbox up: looked for while its lines are
	// already being logged, the pidfile written then).
	// bubblewrap's --new-session makes the sandbox's init a session and group leader, and the
	// command is forked into that group: the group signalled is the command's process group.
	var mu sync.Mutex
	group, commandPid := pid, pid
	var watch *commandWatch
	if box != nil && box.readInit() > 0 {
		watch = newCommandWatch(box.initPid)
	}
	found := func() { // with mu held
		if watch != nil && watch.pid > 0 {
			commandPid, group = watch.pid, watch.pid
			if g := processGroup(watch.pid); g > 0 {
				group = g
			}
		}
		keys := []string{"pid", "group", "shim"}
		values := map[string]any{"pid": commandPid, "group": group, "shim": os.Getpid()}
		if box != nil {
			keys = append(keys, "init")
			values["init"] = box.initPid
		}
		writeJSON(a.pidfile, keys, values)
	}
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT)
	go func() {
		for sig := range signals {
			mu.Lock()
			if watch != nil && !watch.done {
				if !watch.look() { // set up, but its command not started: nothing in it to stop gently
					_ = syscall.Kill(box.initPid, syscall.SIGKILL)
					mu.Unlock()
					continue
				}
				found()
			}
			// To the whole group: `sh -c "python3 app.py"` forks, and the shell would not pass it on.
			_ = syscall.Kill(-group, sig.(syscall.Signal))
			mu.Unlock()
		}
	}()
	mu.Lock()
	if watch == nil {
		found()
	} else {
		go func() {
			time.Sleep(watch.interval) // bubblewrap takes some milliseconds to set it up
			for {
				mu.Lock()
				if watch.done {
					mu.Unlock()
					return
				}
				if watch.look() {
					found()
					mu.Unlock()
					return
				}
				wait := watch.interval
				mu.Unlock()
				time.Sleep(wait)
			}
		}()
	}
	mu.Unlock()
	ended := func() {
		// Like a container: when the main process ends, what it left behind in its group ends too.
		mu.Lock()
		defer mu.Unlock()
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		if group != pid {
			_ = syscall.Kill(-group, syscall.SIGKILL)
		}
		if box != nil {
			box.end()
		}
	}
	streamsEnded := func() {
		mu.Lock()
		defer mu.Unlock()
		if watch != nil && !watch.done {
			watch.done = true // the streams ended before it was seen: the bubblewrap process stands for it
			found()
		}
	}
	status := follow(pid, map[*os.File]*streamLines{
		pollable(outR): {log: log, stream: "stdout", masker: masker},
		pollable(errR): {log: log, stream: "stderr", masker: masker},
	}, childSignals, ended, streamsEnded)
	rc := waitRC(status)
	code, sig := exitStatus(rc, box != nil)
	writeJSON(a.exitfile, []string{"code", "signal", "time"}, map[string]any{"code": code, "signal": sig, "time": pyTime()})
	if rc >= 0 {
		return rc
	}
	return 128 - rc
}

// startCommand: the command's process, sandboxed (bubblewrap, as the tenant) or not: its pid and
// the read ends of its stdout and stderr. `pre`: made ahead by a waiting shim (prepared.go), used
// when box took its cgroup.
func startCommand(a *shimArgs, box *sandboxed, command []string, pre *prepared) (int, int, int, error) {
	order := buildOrder(a, box, command)
	staged := os.Geteuid() == 0
	if box != nil && pre != nil && box.cg == pre.cg { // the prepared process becomes the command
		order.Joined = true
		box.infoR = os.NewFile(uintptr(pre.infoR), "info")
		outR, errR, e := pre.outR, pre.errR, pre.enter
		pre.taken()
		pid, err := e.send(order)
		if err != nil {
			syscall.Close(outR)
			syscall.Close(errR)
			return 0, 0, 0, err
		}
		return pid, outR, errR, nil
	}
	null, err := syscall.Open(os.DevNull, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return 0, 0, 0, err
	}
	defer syscall.Close(null)
	outR, outW, err := pipe()
	if err != nil {
		return 0, 0, 0, err
	}
	errR, errW, err := pipe()
	if err != nil {
		syscall.Close(outR)
		syscall.Close(outW)
		return 0, 0, 0, err
	}
	infoW := -1
	if box != nil {
		var infoR int
		if infoR, infoW, err = pipe(); err == nil {
			box.infoR = os.NewFile(uintptr(infoR), "info")
		}
	}
	var e *enterProc
	if err == nil {
		e, err = launchEnter([3]int{null, outW, errW}, infoW, box != nil && staged, nil)
	}
	syscall.Close(outW)
	syscall.Close(errW)
	if infoW >= 0 {
		syscall.Close(infoW)
	}
	if err == nil {
		var pid int
		if pid, err = e.send(order); err == nil {
			return pid, outR, errR, nil
		}
	}
	syscall.Close(outR)
	syscall.Close(errR)
	return 0, 0, 0, err
}

const infoFD = 5 // bubblewrap's info pipe in the command's process (launchEnter's descriptors)

// buildOrder: what the command's process is told (jail.go enter).
func buildOrder(a *shimArgs, box *sandboxed, command []string) *enterOrder {
	env := commandEnv()
	if box == nil {
		return &enterOrder{Argv: command, Env: env, Cwd: a.cwd, MemMiB: a.memMiB, User: a.user, Priority: a.priority}
	}
	s := box.spec
	staged := os.Geteuid() == 0
	order := &enterOrder{Argv: bwrapArgv(s, command, a.cwd, infoFD, staged), Env: sandboxEnv(s, env), Sandbox: true,
		MemMiB: s.MemMiB, Nofile: s.Nofile, Nproc: s.Nproc, Binds: s.Binds, Staged: staged, UID: s.UID, GID: s.GID,
		Priority: a.priority}
	if box.cg != nil {
		order.Cgroups = box.cg.dirs
		for c := range box.cg.controllers {
			order.Controllers = append(order.Controllers, c)
		}
	}
	return order
}

// startForeground: the sandboxed command with this process's standard streams.
func startForeground(a *shimArgs, box *sandboxed) (int, error) {
	infoR, infoW, err := pipe()
	if err != nil {
		return 0, err
	}
	box.infoR = os.NewFile(uintptr(infoR), "info")
	e, err := launchEnter([3]int{0, 1, 2}, infoW, os.Geteuid() == 0, nil)
	syscall.Close(infoW)
	if err != nil {
		return 0, err
	}
	return e.send(buildOrder(a, box, a.command))
}

// shimForeground: shim.foreground, a probe's or an addon setup's run: standard streams passed
// through, the command's exit code returned.
func shimForeground(a *shimArgs) int {
	if a.sandbox == "" {
		shimUsageError("--foreground needs --sandbox")
	}
	name := "(nothing)"
	if len(a.command) > 0 {
		name = a.command[0]
	}
	box, err := newSandboxed(a.sandbox, nil)
	if err == nil && len(a.command) == 0 {
		err = fmt.Errorf("no command")
	}
	var pid int
	if err == nil {
		pid, err = startForeground(a, box)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "cannot start %s: %s\n", name, OSErrorText(err, ""))
		if box != nil {
			box.end()
		}
		return 127
	}
	if box.readInit() > 0 {
		w := newCommandWatch(box.initPid)
		for !w.look() {
			time.Sleep(w.interval)
		}
	}
	var ws syscall.WaitStatus
	for {
		if _, err := syscall.Wait4(pid, &ws, 0, nil); err != syscall.EINTR {
			break
		}
	}
	box.end()
	code, sig := exitStatus(waitRC(ws), true)
	if code != nil {
		return code.(int)
	}
	return 128 + sig.(int)
}

func unsafePointer[T any](p *T) unsafe.Pointer { return unsafe.Pointer(p) }
