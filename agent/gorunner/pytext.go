// Python's text rules where the step runner must print what the Python agent prints: bytes
// decoded as utf-8 with errors="replace" (one U+FFFD per maximal ill-formed subpart), str.strip's
// whitespace, str.splitlines' line boundaries, repr() of a str and OSError's text.
package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"syscall"
	"unicode"
	"unicode/utf8"
)

// DecodeReplace is bytes.decode("utf-8", errors="replace").
func DecodeReplace(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	var out strings.Builder
	out.Grow(len(b) + 8)
	cont := func(i int, lo, hi byte) bool { return i < len(b) && b[i] >= lo && b[i] <= hi }
	i := 0
	for i < len(b) {
		c := b[i]
		switch {
		case c < 0x80:
			out.WriteByte(c)
			i++
		case c < 0xc2 || c > 0xf4:
			out.WriteRune(utf8.RuneError)
			i++
		case c < 0xe0:
			if cont(i+1, 0x80, 0xbf) {
				out.Write(b[i : i+2])
				i += 2
			} else {
				out.WriteRune(utf8.RuneError)
				i++
			}
		case c < 0xf0:
			lo, hi := byte(0x80), byte(0xbf)
			if c == 0xe0 {
				lo = 0xa0
			} else if c == 0xed {
				hi = 0x9f
			}
			switch {
			case !cont(i+1, lo, hi):
				out.WriteRune(utf8.RuneError)
				i++
			case !cont(i+2, 0x80, 0xbf):
				out.WriteRune(utf8.RuneError)
				i += 2
			default:
				out.Write(b[i : i+3])
				i += 3
			}
		default:
			lo, hi := byte(0x80), byte(0xbf)
			if c == 0xf0 {
				lo = 0x90
			} else if c == 0xf4 {
				hi = 0x8f
			}
			switch {
			case !cont(i+1, lo, hi):
				out.WriteRune(utf8.RuneError)
				i++
			case !cont(i+2, 0x80, 0xbf):
				out.WriteRune(utf8.RuneError)
				i += 2
			case !cont(i+3, 0x80, 0xbf):
				out.WriteRune(utf8.RuneError)
				i += 3
			default:
				out.Write(b[i : i+4])
				i += 4
			}
		}
	}
	return out.String()
}

// IsPySpace is str.isspace() for one character: Go's unicode.IsSpace and U+001C..U+001F.
func IsPySpace(r rune) bool {
	return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f)
}

func PyStrip(s string) string  { return strings.TrimFunc(s, IsPySpace) }
func PyLstrip(s string) string { return strings.TrimLeftFunc(s, IsPySpace) }
func PyRstrip(s string) string { return strings.TrimRightFunc(s, IsPySpace) }

// RstripNewlines is s.rstrip("\r\n").
func RstripNewlines(s string) string { return strings.TrimRight(s, "\r\n") }

// SplitLines is str.splitlines() (no line ends kept).
func SplitLines(s string) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch r {
		case '\n', '\v', '\f', 0x1c, 0x1d, 0x1e, 0x85, 0x2028, 0x2029:
			out = append(out, s[start:i])
			i += size
			start = i
		case '\r':
			out = append(out, s[start:i])
			i += size
			if i < len(s) && s[i] == '\n' {
				i++
			}
			start = i
		default:
			i += size
		}
	}
	if start < len(s) {
		out = append(out, s[start:])
	}
	return out
}

// PyRepr is repr() of a str (printable characters as they are; quotes as Python picks them).
func PyRepr(s string) string {
	quote := byte('\'')
	if strings.ContainsRune(s, '\'') && !strings.ContainsRune(s, '"') {
		quote = '"'
	}
	var b strings.Builder
	b.WriteByte(quote)
	for _, r := range s {
		switch {
		case r == rune(quote) || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case r < 0x7f:
			b.WriteRune(r)
		case !unicode.IsPrint(r) || r == 0xad:
			switch {
			case r <= 0xff:
				fmt.Fprintf(&b, `\x%02x`, r)
			case r <= 0xffff:
				fmt.Fprintf(&b, `\u%04x`, r)
			default:
				fmt.Fprintf(&b, `\U%08x`, r)
			}
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte(quote)
	return b.String()
}

// glibc's strerror() texts (Python's OSError shows those; Go's own table is worded otherwise).
var strerror = map[syscall.Errno]string{
	syscall.EPERM: "Operation not permitted", syscall.ENOENT: "No such file or directory",
	syscall.EINTR: "Interrupted system call", syscall.EIO: "Input/output error",
	syscall.E2BIG: "Argument list too long", syscall.ENOEXEC: "Exec format error",
	syscall.EBADF: "Bad file descriptor", syscall.ENOMEM: "Cannot allocate memory",
	syscall.EACCES: "Permission denied", syscall.EBUSY: "Device or resource busy",
	syscall.EEXIST: "File exists", syscall.EXDEV: "Invalid cross-device link",
	syscall.ENOTDIR: "Not a directory", syscall.EISDIR: "Is a directory",
	syscall.EINVAL: "Invalid argument", syscall.ENFILE: "Too many open files in system",
	syscall.EMFILE: "Too many open files", syscall.ETXTBSY: "Text file busy",
	syscall.EFBIG: "File too large", syscall.ENOSPC: "No space left on device",
	syscall.EROFS: "Read-only file system", syscall.EMLINK: "Too many links",
	syscall.ENAMETOOLONG: "File name too long", syscall.ENOTEMPTY: "Directory not empty",
	syscall.ELOOP: "Too many levels of symbolic links", syscall.EDQUOT: "Disk quota exceeded",
	syscall.EAGAIN: "Resource temporarily unavailable", syscall.ECONNREFUSED: "Connection refused",
	syscall.ENETUNREACH: "Network is unreachable", syscall.EHOSTUNREACH: "No route to host",
}

func errnoText(e syscall.Errno) string {
	if t, ok := strerror[e]; ok {
		return t
	}
	t := e.Error()
	if t == "" {
		return fmt.Sprintf("Unknown error %d", int(e))
	}
	return strings.ToUpper(t[:1]) + t[1:]
}

// OSErrorText is str(OSError) as Python prints it: "[Errno 2] No such file or directory: 'x'".
func OSErrorText(err error, filename string) string {
	var errno syscall.Errno
	var pe *fs.PathError
	if errors.As(err, &pe) && filename == "" {
		filename = pe.Path
	}
	if errors.As(err, &errno) {
		if filename != "" {
			return fmt.Sprintf("[Errno %d] %s: %s", int(errno), errnoText(errno), PyRepr(filename))
		}
		return fmt.Sprintf("[Errno %d] %s", int(errno), errnoText(errno))
	}
	return err.Error()
}

// ---- os.path and os.makedirs, as Python has them -----------------------------------------------

func pySplit(p string) (string, string) {
	i := strings.LastIndexByte(p, '/') + 1
	head, tail := p[:i], p[i:]
	if head != "" && head != strings.Repeat("/", len(head)) {
		head = strings.TrimRight(head, "/")
	}
	return head, tail
}

func pyDirname(p string) string { h, _ := pySplit(p); return h }

// pyJoin is os.path.join(a, b) for a relative b: no cleaning (the step sees the path as given).
func pyJoin(a, b string) string {
	if a == "" || strings.HasSuffix(a, "/") {
		return a + b
	}
	return a + "/" + b
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

func isDir(p string) bool { st, err := os.Stat(p); return err == nil && st.IsDir() }

// Makedirs is os.makedirs(name, exist_ok=True).
func Makedirs(name string) error {
	head, tail := pySplit(name)
	if tail == "" {
		head, tail = pySplit(head)
	}
	if head != "" && tail != "" && !exists(head) {
		if err := Makedirs(head); err != nil && !errors.Is(err, syscall.EEXIST) {
			return err
		}
		if tail == "." {
			return nil
		}
	}
	if err := syscall.Mkdir(name, 0o777); err != nil {
		if !isDir(name) {
			return &fs.PathError{Op: "mkdir", Path: name, Err: err}
		}
	}
	return nil
}
