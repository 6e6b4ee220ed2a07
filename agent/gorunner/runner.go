//go:build !shim

package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	metaPrefix  = "action meta:"
	timeoutExit = 124
	readSize    = 65536 // a longer line is streamed in pieces of this size
	exitGrace   = 5 * time.Second
)

// ---- the log: numbered, timestamped, masked JSON lines on stdout ------------------------------

type LogOut struct {
	masker *Masker
	out    io.Writer
	number int
	meta   *Obj
	mu     sync.Mutex
}

// round6 is round(x, 6): correctly rounded, as Python rounds floats.
func round6(x float64) float64 {
	f, _ := strconv.ParseFloat(strconv.FormatFloat(x, 'f', 6, 64), 64)
	return f
}

func (l *LogOut) Line(text, stream string) {
	text = RstripNewlines(text)
	if stream == "stdout" && strings.HasPrefix(text, metaPrefix) {
		key, value, sep := strings.Cut(PyStrip(text[len(metaPrefix):]), "=")
		if sep && PyStrip(key) != "" {
			l.meta.Set(PyStrip(key), PyStrip(value))
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.number++
	rec := &Obj{Keys: []string{"n", "ts", "stream", "text"}, Vals: map[string]any{
		"n": l.number, "ts": round6(pyTime()), "stream": stream, "text": l.masker.Line(text, stream)}}
	_, _ = io.WriteString(l.out, Dumps(rec, false)+"\n")
}

func (l *LogOut) System(text string) { l.Line(text, "system") }

// ---- files -------------------------------------------------------------------------------------

func readMetafile(path string) *Obj {
	out := NewObj()
	if path == "" {
		return out
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return out
	}
	for _, raw := range SplitLines(DecodeReplace(data)) {
		key, value, sep := strings.Cut(raw, "=")
		if sep && PyStrip(key) != "" {
			out.Set(PyStrip(key), PyStrip(value))
		}
	}
	return out
}

func writeJSONAtomic(path string, data *Obj) error {
	folder, name := pySplit(path)
	made := folder
	if made == "" {
		made = "."
	}
	if err := Makedirs(made); err != nil {
		return err
	}
	tmp := pyJoin(folder, fmt.Sprintf(".%s.%d.tmp", name, os.Getpid()))
	if err := os.WriteFile(tmp, []byte(Dumps(data, true)), 0o666); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func restore(s *Spec, log *LogOut) error {
	if err := Makedirs(s.Workdir); err != nil {
		return err
	}
	aliases := append([]string(nil), s.Dirs.Keys...)
	sortStrings(aliases)
	for _, alias := range aliases {
		path := s.Dirs.Vals[alias].(string)
		if !isDir(path) {
			if err := Makedirs(path); err != nil {
				return err
			}
			log.System(fmt.Sprintf("context: directory of %s was empty", PyRepr(alias)))
		}
	}
	return nil
}

func sortStrings(a []string) {
	for i := 1; i < len(a); i++ {
		for j := i; j > 0 && a[j] < a[j-1]; j-- {
			a[j], a[j-1] = a[j-1], a[j]
		}
	}
}

// ---- the step's environment ------------------------------------------------------------------

type envList struct {
	keys []string
	vals map[string]string
}

func (e *envList) set(k, v string) {
	if _, ok := e.vals[k]; !ok {
		e.keys = append(e.keys, k)
	}
	e.vals[k] = v
}

func (e *envList) pop(k string) {
	if _, ok := e.vals[k]; !ok {
		return
	}
	delete(e.vals, k)
	for i, key := range e.keys {
		if key == k {
			e.keys = append(e.keys[:i], e.keys[i+1:]...)
			break
		}
	}
}

func (e *envList) list() []string {
	out := make([]string, 0, len(e.keys))
	for _, k := range e.keys {
		out = append(out, k+"="+e.vals[k])
	}
	return out
}

// processEnv is os.environ as the Python agent sees it: the first of a repeated name, and
// LC_CTYPE=C.UTF-8 where Python coerces a C locale (PEP 538), which its children inherit.
func processEnv() *envList {
	e := &envList{vals: map[string]string{}}
	for _, kv := range syscall.Environ() {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		if _, seen := e.vals[k]; !seen {
			e.set(k, v)
		}
	}
	if pythonCoercesLocale(e.vals) {
		e.set("LC_CTYPE", "C.UTF-8")
	}
	return e
}

func pythonCoercesLocale(env map[string]string) bool {
	if env["LC_ALL"] != "" || env["PYTHONCOERCECLOCALE"] == "0" {
		return false
	}
	name := env["LC_CTYPE"]
	if name == "" {
		name = env["LANG"]
	}
	if name == "" || name == "C" || name == "POSIX" {
		return true
	}
	return !localeAvailable(name) // setlocale fails: the C locale stays, and is coerced
}

// localeAvailable: whether glibc's setlocale(LC_CTYPE, name) succeeds, as far as its files tell
// (C.UTF-8 is built in; a compiled locale under /usr/lib/locale, or in its locale-archive; the
// codeset normalized as glibc does). locale.alias names are not expanded.
func localeAvailable(name string) bool {
	if strings.Contains(name, "/") {
		return false
	}
	names := []string{name}
	if base, rest, ok := strings.Cut(name, "."); ok {
		codeset, mod, hasMod := strings.Cut(rest, "@")
		norm := ""
		digits := true
		for _, r := range strings.ToLower(codeset) {
			if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
				norm += string(r)
				digits = digits && r >= '0' && r <= '9'
			}
		}
		if digits {
			norm = "iso" + norm
		}
		n := base + "." + norm
		if hasMod {
			n += "@" + mod
		}
		names = append(names, n)
	}
	for _, n := range names {
		if n == "C.UTF-8" || n == "C.utf8" {
			return true
		}
		if _, err := os.Stat("/usr/lib/locale/" + n + "/LC_CTYPE"); err == nil {
			return true
		}
	}
	fh, err := os.Open("/usr/lib/locale/locale-archive")
	if err != nil {
		return false
	}
	defer fh.Close()
	head := make([]byte, 32)
	if _, err := fh.ReadAt(head, 0); err != nil {
		return false
	}
	offset, used := binary.LittleEndian.Uint32(head[20:]), binary.LittleEndian.Uint32(head[24:])
	if used > 1<<24 {
		return false
	}
	table := make([]byte, used)
	if _, err := fh.ReadAt(table, int64(offset)); err != nil {
		return false
	}
	for _, n := range names {
		for _, entry := range bytes.Split(table, []byte{0}) {
			if string(entry) == n {
				return true
			}
		}
	}
	return false
}

func stepEnv(s *Spec) []string {
	env := processEnv()
	env.pop("PYTHONPATH")
	env.pop(fallbackVar)
	for _, k := range s.Envs.Keys {
		env.set(k, PyStr(s.Envs.Vals[k]))
	}
	env.set("METAFILE", s.Metafile)
	env.set("WORKDIR", s.Workdir)
	env.set("PIPELINE_TASK_ALIAS", s.Alias)
	taskRun, present := s.raw.Get("task_run")
	if present {
		env.set("PIPELINE_TASK_RUN_ID", PyStr(taskRun))
	} else {
		env.set("PIPELINE_TASK_RUN_ID", "")
	}
	return env.list()
}

// ---- running -----------------------------------------------------------------------------------

type lines struct {
	log  *LogOut
	name string
	buf  []byte
}

func (ls *lines) emit(piece []byte) { ls.log.Line(DecodeReplace(piece), ls.name) }

func (ls *lines) feed(data []byte) {
	ls.buf = append(ls.buf, data...)
	for {
		cut := bytes.IndexByte(ls.buf, '\n')
		if cut < 0 {
			if len(ls.buf) >= readSize {
				ls.emit(ls.buf[:readSize])
				ls.buf = ls.buf[readSize:]
				continue
			}
			ls.compact()
			return
		}
		end := cut + 1
		if end > readSize {
			end = readSize
		}
		ls.emit(ls.buf[:end])
		ls.buf = ls.buf[end:]
	}
}

func (ls *lines) compact() {
	if cap(ls.buf) > 4*readSize && len(ls.buf) < readSize {
		ls.buf = append([]byte(nil), ls.buf...)
	}
}

func (ls *lines) close() {
	if len(ls.buf) > 0 {
		ls.emit(ls.buf)
		ls.buf = nil
	}
}

// lookPath finds a program as posix_spawnp does (the agent's own PATH).
func lookPath(name string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	path, ok := syscall.Getenv("PATH")
	if !ok {
		path = "/bin:/usr/bin"
	}
	var found error = syscall.ENOENT
	for _, dir := range strings.Split(path, ":") {
		candidate := name
		if dir != "" {
			candidate = dir + "/" + name
		}
		st, err := os.Stat(candidate)
		if err != nil || st.IsDir() {
			continue
		}
		if syscall.Access(candidate, 1) != nil {
			found = syscall.EACCES
			continue
		}
		return candidate, nil
	}
	return "", found
}

func spawn(argv []string, cwd string, env []string, ownGroup bool) (int, int, int, error) {
	var out, errp [2]int
	if err := syscall.Pipe2(out[:], syscall.O_CLOEXEC); err != nil {
		return 0, 0, 0, err
	}
	if err := syscall.Pipe2(errp[:], syscall.O_CLOEXEC); err != nil {
		syscall.Close(out[0])
		syscall.Close(out[1])
		return 0, 0, 0, err
	}
	null, err := syscall.Open(os.DevNull, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	closeAll := func(fds ...int) {
		for _, fd := range fds {
			syscall.Close(fd)
		}
	}
	if err != nil {
		closeAll(out[0], out[1], errp[0], errp[1])
		return 0, 0, 0, &os.PathError{Op: "open", Path: os.DevNull, Err: err}
	}
	defer closeAll(null, out[1], errp[1])
	fail := func(err error) (int, int, int, error) {
		closeAll(out[0], errp[0])
		return 0, 0, 0, err
	}
	here, _ := syscall.Getwd()
	// posix_spawn has no working directory of its own: the Python agent changes its own and back
	if err := syscall.Chdir(cwd); err != nil {
		return fail(&os.PathError{Op: "chdir", Path: cwd, Err: err})
	}
	defer func() { _ = syscall.Chdir(here) }()
	program, err := lookPath(argv[0])
	if err != nil {
		return fail(&os.PathError{Op: "exec", Path: argv[0], Err: err})
	}
	defaultSignalsInChild()
	pid, err := syscall.ForkExec(program, argv, &syscall.ProcAttr{
		Env:   env,
		Files: []uintptr{uintptr(null), uintptr(out[1]), uintptr(errp[1])},
		Sys:   &syscall.SysProcAttr{Setpgid: ownGroup},
	})
	if err != nil {
		return fail(&os.PathError{Op: "exec", Path: argv[0], Err: err})
	}
	return pid, out[0], errp[0], nil
}

func exitCode(ws syscall.WaitStatus) int {
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

func selectRead(fds []int, wait time.Duration) []int {
	var set syscall.FdSet
	maxfd := 0
	for _, fd := range fds {
		set.Bits[fd/64] |= 1 << (uint(fd) % 64)
		maxfd = max(maxfd, fd)
	}
	tv := syscall.NsecToTimeval(wait.Nanoseconds())
	n, err := syscall.Select(maxfd+1, &set, nil, nil, &tv)
	if err != nil || n <= 0 {
		return nil
	}
	var ready []int
	for _, fd := range fds {
		if set.Bits[fd/64]&(1<<(uint(fd)%64)) != 0 {
			ready = append(ready, fd)
		}
	}
	return ready
}

// runProcess: argv with its output streamed; (exit code, timed out). The agent leads its
// process group as a job's command: the child shares it, so a stop signal to the job reaches
// every process of the step; run by hand the child gets a group of its own.
func runProcess(argv []string, cwd string, env []string, log *LogOut, timeout *Num) (int, bool) {
	leader := syscall.Getpgrp() == syscall.Getpid()
	pid, outR, errR, err := spawn(argv, cwd, env, !leader)
	if err != nil {
		log.System(fmt.Sprintf("cannot start %s: %s", argv[0], OSErrorText(err, "")))
		return 127, false
	}
	streams := map[int]*lines{outR: {log: log, name: "stdout"}, errR: {log: log, name: "stderr"}}
	order := []int{outR, errR}
	var deadline time.Time
	hasDeadline := timeout != nil && timeout.Float() != 0
	if hasDeadline {
		seconds := timeout.Float()
		if seconds > 1e9 { // beyond a Duration (an integer of any size is valid JSON): never reached
			seconds = 1e9
		}
		deadline = time.Now().Add(time.Duration(seconds * float64(time.Second)))
	}
	var status *syscall.WaitStatus
	timedOut := false
	var endedAt time.Time
	buf := make([]byte, readSize)
	for len(order) > 0 {
		now := time.Now()
		if status == nil && hasDeadline && !now.Before(deadline) && !timedOut {
			timedOut = true
			log.System(fmt.Sprintf("timed out after %s: stopping the step", formatG(*timeout)+"s"))
			ws := stop(pid, leader)
			status, endedAt = &ws, time.Now()
		}
		if !endedAt.IsZero() && time.Since(endedAt) > exitGrace {
			break // a process the step left behind holds the streams open: stop reading
		}
		wait := 200 * time.Millisecond
		if hasDeadline && status == nil {
			wait = max(0, min(wait, deadline.Sub(now)))
		}
		for _, fd := range selectRead(order, wait) {
			n, err := syscall.Read(fd, buf)
			if err == syscall.EINTR || err == syscall.EAGAIN {
				continue
			}
			if n > 0 {
				streams[fd].feed(buf[:n])
				continue
			}
			streams[fd].close()
			syscall.Close(fd)
			delete(streams, fd)
			for i, o := range order {
				if o == fd {
					order = append(order[:i], order[i+1:]...)
					break
				}
			}
		}
		if status == nil {
			var ws syscall.WaitStatus
			done, _ := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
			if done == pid {
				status, endedAt = &ws, time.Now()
			}
		}
	}
	for _, fd := range order {
		streams[fd].close()
		syscall.Close(fd)
	}
	if status == nil {
		var ws syscall.WaitStatus
		for {
			if _, err := syscall.Wait4(pid, &ws, 0, nil); err != syscall.EINTR {
				break
			}
		}
		status = &ws
	}
	if timedOut {
		return timeoutExit, true
	}
	return exitCode(*status), false
}

// formatG is format(timeout, "g").
func formatG(n Num) string {
	if n.Int {
		if i, err := strconv.ParseInt(n.Raw, 10, 64); err == nil && (i < 1e6 && i > -1e6) {
			return strconv.FormatInt(i, 10)
		}
	}
	f := n.Float()
	text := strconv.FormatFloat(f, 'g', 6, 64)
	if strings.ContainsAny(text, "e") {
		mant, exp, _ := strings.Cut(text, "e")
		if strings.Contains(mant, ".") {
			mant = strings.TrimRight(strings.TrimRight(mant, "0"), ".")
		}
		return mant + "e" + exp
	}
	return text
}

// stop: the whole group (the shell and what it started) but not the agent itself: SIGTERM,
// SIGKILL to the step's process after 5 s. Its wait status.
func stop(pid int, leader bool) syscall.WaitStatus {
	caught := make(chan os.Signal, 1)
	signal.Notify(caught, syscall.SIGTERM) // held off, as the Python agent ignores it meanwhile
	defer signal.Reset(syscall.SIGTERM)
	group := pid
	if leader {
		group = syscall.Getpgrp()
	}
	_ = syscall.Kill(-group, syscall.SIGTERM)
	var ws syscall.WaitStatus
	end := time.Now().Add(5 * time.Second)
	for time.Now().Before(end) {
		if done, _ := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil); done == pid {
			return ws
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	for {
		if _, err := syscall.Wait4(pid, &ws, 0, nil); err != syscall.EINTR {
			return ws
		}
	}
}

func runScript(s *Spec, log *LogOut, env []string) (int, bool, error) {
	text, ok := s.stepScript()
	if !ok {
		return 0, false, errors.New("a git-checkout step needs its script rendered by the console (`script`)")
	}
	if text == nil {
		log.System("no commands to run")
		return 0, false, nil
	}
	script := pyJoin(pyDirname(s.Metafile), "script.sh")
	// 0600 from the start: it may hold a secret (a checkout's credentials), as spec.json does
	fd, err := syscall.Open(script, syscall.O_WRONLY|syscall.O_CREAT|syscall.O_TRUNC|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return 0, false, &os.PathError{Op: "open", Path: script, Err: err}
	}
	fh := os.NewFile(uintptr(fd), script)
	if _, err := io.WriteString(fh, *text); err != nil {
		fh.Close()
		return 0, false, err
	}
	fh.Close()
	if err := syscall.Chmod(script, 0o600); err != nil { // an existing file keeps its mode through O_CREAT
		return 0, false, &os.PathError{Op: "chmod", Path: script, Err: err}
	}
	shell := s.Shell
	if shell == "" {
		shell = "/bin/sh"
	}
	code, timedOut := runProcess([]string{shell, script}, s.Workdir, env, log, s.Timeout)
	return code, timedOut, nil
}

func notify(address string, taskRun, job any, result *Obj) {
	if address == "" {
		return
	}
	if strings.HasPrefix(address, "udp://") {
		rest := address[len("udp://"):]
		i := strings.LastIndexByte(rest, ':')
		host, port := "", rest
		if i >= 0 {
			host, port = rest[:i], rest[i+1:]
		}
		p, err := strconv.Atoi(strings.TrimSpace(port))
		if err != nil || p < 0 || p > 65535 {
			return
		}
		hint := &Obj{Keys: []string{"task_run", "job"}, Vals: map[string]any{"task_run": taskRun, "job": job}}
		conn, err := net.Dial("udp4", net.JoinHostPort(host, strconv.Itoa(p)))
		if err != nil {
			return
		}
		_, _ = conn.Write([]byte(Dumps(hint, true)))
		conn.Close()
	} else if strings.HasPrefix(address, "http://") {
		payload := &Obj{Keys: []string{"task_run", "job", "result"},
			Vals: map[string]any{"task_run": taskRun, "job": job, "result": result}}
		postJSON(address, []byte(Dumps(payload, true)))
	}
	// https: the Python agent's (needsPython): TLS would cost every step's start its packages'
	// initialisation for an address the local cluster never gives.
}

// postJSON: one HTTP/1.1 POST of body to an http:// address, its answer read and dropped (net
// alone: net/http and the TLS it brings cost each start ~0.8 ms of CPU to initialise).
func postJSON(address string, body []byte) {
	rest, _, _ := strings.Cut(address[len("http://"):], "#")
	hostport, path, _ := strings.Cut(rest, "/")
	path = "/" + path
	if at := strings.LastIndexByte(hostport, '@'); at >= 0 {
		hostport = hostport[at+1:]
	}
	host, dial := hostport, hostport
	if _, _, err := net.SplitHostPort(hostport); err != nil {
		dial = net.JoinHostPort(strings.Trim(hostport, "[]"), "80")
	}
	conn, err := net.DialTimeout("tcp", dial, 10*time.Second)
	if err != nil {
		return
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	head := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"+
		"Connection: close\r\nUser-Agent: dice-step\r\n\r\n", path, host, len(body))
	if _, err := conn.Write(append([]byte(head), body...)); err != nil {
		return
	}
	_, _ = io.Copy(io.Discard, conn) // until the server closes: the request was taken
}

func errorText(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return OSErrorText(pe.Err, pe.Path)
	}
	return err.Error()
}

// Run is agent.runner.run: the result's exit code.
func Run(s *Spec) int {
	log := &LogOut{masker: NewMasker(s.Mask, s.Forms), out: os.Stdout, meta: NewObj()}
	started := pyTime()
	errText := ""
	code, timedOut := 0, false
	err := func() error {
		if err := restore(s, log); err != nil {
			return err
		}
		dir := pyDirname(s.Metafile)
		if dir == "" {
			dir = "."
		}
		if err := Makedirs(dir); err != nil {
			return err
		}
		fd, err := syscall.Open(s.Metafile, syscall.O_WRONLY|syscall.O_CREAT|syscall.O_CLOEXEC, 0o666) // touch
		if err != nil {
			return &os.PathError{Op: "open", Path: s.Metafile, Err: err}
		}
		syscall.Close(fd)
		var e error
		code, timedOut, e = runScript(s, log, stepEnv(s))
		return e
	}()
	if err != nil { // the result must always be written
		code, timedOut, errText = 1, false, "agent error: "+errorText(err)
		log.System(errText)
	}
	outputs := readMetafile(s.Metafile)
	for _, k := range log.meta.Keys {
		outputs.Set(k, log.meta.Vals[k])
	}
	for _, k := range outputs.Keys {
		outputs.Vals[k] = log.masker.Mask(outputs.Vals[k].(string))
	}
	result := &Obj{Keys: []string{"exit_code", "outputs", "started", "finished", "timed_out", "caches", "error", "lines"},
		Vals: map[string]any{"exit_code": code, "outputs": outputs, "started": started, "finished": pyTime(),
			"timed_out": timedOut, "caches": []any{}, "error": errText, "lines": log.number}}
	suffix := ""
	if timedOut {
		suffix = " (timed out)"
	}
	log.System(fmt.Sprintf("exit code %d%s", code, suffix))
	result.Vals["lines"] = log.number
	if err := writeJSONAtomic(s.Result, result); err != nil {
		fmt.Fprintf(os.Stderr, "dice-step: cannot write the result %s: %s\n", s.Result, errorText(err))
		os.Exit(1)
	}
	job, _ := s.raw.Get("job")
	notify(s.Notify, s.TaskRun, job, result)
	return code
}
