//go:build !shim

// JSON as Python's json module reads and writes it: objects keep their keys' order (a repeated
// key keeps its first place and its last value, as dict(pairs) does), numbers keep their text,
// and dumps writes Python's separators (", " and ": "), its escapes and its float repr.
package main

import (
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Obj is a JSON object with its keys in order.
type Obj struct {
	Keys []string
	Vals map[string]any
}

func NewObj() *Obj { return &Obj{Vals: map[string]any{}} }

func (o *Obj) Set(k string, v any) {
	if _, ok := o.Vals[k]; !ok {
		o.Keys = append(o.Keys, k)
	}
	o.Vals[k] = v
}

func (o *Obj) Get(k string) (any, bool) {
	if o == nil {
		return nil, false
	}
	v, ok := o.Vals[k]
	return v, ok
}

// Num is a JSON number as written; Int tells an integer literal (Python's int) from a float.
type Num struct {
	Raw string
	Int bool
}

func (n Num) Float() float64 {
	f, _ := strconv.ParseFloat(n.Raw, 64)
	return f
}

type parser struct {
	s   string
	pos int
}

type jsonError struct {
	msg string
	pos int
}

func (e *jsonError) Error() string { return e.msg }

// Loads parses one JSON document (as json.loads: NaN and Infinity accepted, control characters
// in strings refused).
func Loads(text string) (v any, err error) {
	p := &parser{s: text}
	defer func() {
		if r := recover(); r != nil {
			je, ok := r.(*jsonError)
			if !ok {
				panic(r)
			}
			err = fmt.Errorf("not JSON: %s at character %d", je.msg, je.pos)
		}
	}()
	p.ws()
	v = p.value()
	p.ws()
	if p.pos != len(p.s) {
		return nil, fmt.Errorf("not JSON: extra data at character %d", p.pos)
	}
	return v, nil
}

func (p *parser) fail(msg string) { panic(&jsonError{msg, p.pos}) }

func (p *parser) ws() {
	for p.pos < len(p.s) {
		switch p.s[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *parser) value() any {
	if p.pos >= len(p.s) {
		p.fail("expecting a value")
	}
	c := p.s[p.pos]
	switch {
	case c == '{':
		p.pos++
		o := NewObj()
		p.ws()
		if p.pos < len(p.s) && p.s[p.pos] == '}' {
			p.pos++
			return o
		}
		for {
			p.ws()
			if p.pos >= len(p.s) || p.s[p.pos] != '"' {
				p.fail("expecting property name enclosed in double quotes")
			}
			k := p.str()
			p.ws()
			if p.pos >= len(p.s) || p.s[p.pos] != ':' {
				p.fail("expecting ':' delimiter")
			}
			p.pos++
			p.ws()
			o.Set(k, p.value())
			p.ws()
			if p.pos < len(p.s) && p.s[p.pos] == ',' {
				p.pos++
				continue
			}
			if p.pos < len(p.s) && p.s[p.pos] == '}' {
				p.pos++
				return o
			}
			p.fail("expecting ',' delimiter")
		}
	case c == '[':
		p.pos++
		out := []any{}
		p.ws()
		if p.pos < len(p.s) && p.s[p.pos] == ']' {
			p.pos++
			return out
		}
		for {
			p.ws()
			out = append(out, p.value())
			p.ws()
			if p.pos < len(p.s) && p.s[p.pos] == ',' {
				p.pos++
				continue
			}
			if p.pos < len(p.s) && p.s[p.pos] == ']' {
				p.pos++
				return out
			}
			p.fail("expecting ',' delimiter")
		}
	case c == '"':
		return p.str()
	case strings.HasPrefix(p.s[p.pos:], "null"):
		p.pos += 4
		return nil
	case strings.HasPrefix(p.s[p.pos:], "true"):
		p.pos += 4
		return true
	case strings.HasPrefix(p.s[p.pos:], "false"):
		p.pos += 5
		return false
	case strings.HasPrefix(p.s[p.pos:], "NaN"):
		p.pos += 3
		return Num{"NaN", false}
	case strings.HasPrefix(p.s[p.pos:], "Infinity"):
		p.pos += 8
		return Num{"Infinity", false}
	case strings.HasPrefix(p.s[p.pos:], "-Infinity"):
		p.pos += 9
		return Num{"-Infinity", false}
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	}
	p.fail("expecting a value")
	return nil
}

func (p *parser) number() any {
	start := p.pos
	if p.s[p.pos] == '-' {
		p.pos++
	}
	digits := func() int {
		n := 0
		for p.pos < len(p.s) && p.s[p.pos] >= '0' && p.s[p.pos] <= '9' {
			p.pos++
			n++
		}
		return n
	}
	if p.pos < len(p.s) && p.s[p.pos] == '0' {
		p.pos++
	} else if digits() == 0 {
		p.pos = start
		p.fail("expecting a value")
	}
	isInt := true
	if p.pos+1 < len(p.s) && p.s[p.pos] == '.' && p.s[p.pos+1] >= '0' && p.s[p.pos+1] <= '9' {
		p.pos++
		digits()
		isInt = false
	}
	if p.pos < len(p.s) && (p.s[p.pos] == 'e' || p.s[p.pos] == 'E') {
		save := p.pos
		p.pos++
		if p.pos < len(p.s) && (p.s[p.pos] == '+' || p.s[p.pos] == '-') {
			p.pos++
		}
		if digits() == 0 {
			p.pos = save
		} else {
			isInt = false
		}
	}
	return Num{p.s[start:p.pos], isInt}
}

func (p *parser) hex4() rune {
	if p.pos+4 > len(p.s) {
		p.fail("invalid \\uXXXX escape")
	}
	v, err := strconv.ParseUint(p.s[p.pos:p.pos+4], 16, 32)
	if err != nil {
		p.fail("invalid \\uXXXX escape")
	}
	p.pos += 4
	return rune(v)
}

func (p *parser) str() string {
	p.pos++ // the quote
	var b strings.Builder
	for {
		if p.pos >= len(p.s) {
			p.fail("unterminated string")
		}
		c := p.s[p.pos]
		switch {
		case c == '"':
			p.pos++
			return b.String()
		case c < 0x20:
			p.fail("invalid control character")
		case c == '\\':
			p.pos++
			if p.pos >= len(p.s) {
				p.fail("unterminated string")
			}
			e := p.s[p.pos]
			p.pos++
			switch e {
			case '"', '\\', '/':
				b.WriteByte(e)
			case 'b':
				b.WriteByte('\b')
			case 'f':
				b.WriteByte('\f')
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			case 'u':
				r := p.hex4()
				if utf16.IsSurrogate(r) && r < 0xdc00 && strings.HasPrefix(p.s[p.pos:], "\\u") {
					save := p.pos
					p.pos += 2
					r2 := p.hex4()
					if r2 >= 0xdc00 && r2 <= 0xdfff {
						r = utf16.DecodeRune(r, r2)
					} else {
						p.pos = save
					}
				}
				b.WriteRune(r) // a lone surrogate becomes U+FFFD (Go strings are UTF-8)
			default:
				p.pos -= 2
				p.fail("invalid \\escape")
			}
		default:
			r, size := utf8.DecodeRuneInString(p.s[p.pos:])
			b.WriteRune(r)
			p.pos += size
		}
	}
}

// ---- dumps ------------------------------------------------------------------------------------

const hexdigits = "0123456789abcdef"

func writeString(b *strings.Builder, s string, asciiOnly bool) {
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		default:
			switch {
			case r < 0x20 || (asciiOnly && r > 0x7e):
				if r > 0xffff {
					hi, lo := utf16.EncodeRune(r)
					writeU(b, hi)
					writeU(b, lo)
				} else {
					writeU(b, r)
				}
			default:
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
}

func writeU(b *strings.Builder, r rune) {
	b.WriteString(`\u`)
	b.WriteByte(hexdigits[(r>>12)&0xf])
	b.WriteByte(hexdigits[(r>>8)&0xf])
	b.WriteByte(hexdigits[(r>>4)&0xf])
	b.WriteByte(hexdigits[r&0xf])
}

// FloatRepr is Python's repr(float): the shortest text that reads back the same, fixed
// notation for exponents -4..15, else d.ddde+XX.
func FloatRepr(f float64) string {
	switch {
	case math.IsNaN(f):
		return "nan"
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	}
	e := strconv.FormatFloat(f, 'e', -1, 64) // -d.ddde±XX
	sign := ""
	if e[0] == '-' {
		sign, e = "-", e[1:]
	}
	mant, expText, _ := strings.Cut(e, "e")
	exp, _ := strconv.Atoi(expText)
	digits := strings.Replace(mant, ".", "", 1)
	if exp < -4 || exp >= 16 {
		m := digits[:1]
		if len(digits) > 1 {
			m += "." + digits[1:]
		}
		es := "+"
		if exp < 0 {
			es, exp = "-", -exp
		}
		return fmt.Sprintf("%s%se%s%02d", sign, m, es, exp)
	}
	if exp < 0 {
		return sign + "0." + strings.Repeat("0", -exp-1) + digits
	}
	if len(digits) <= exp+1 {
		return sign + digits + strings.Repeat("0", exp+1-len(digits)) + ".0"
	}
	return sign + digits[:exp+1] + "." + digits[exp+1:]
}

// PyStr is Python's str() of a JSON scalar (an environment value).
func PyStr(v any) string {
	switch x := v.(type) {
	case nil:
		return "None"
	case bool:
		if x {
			return "True"
		}
		return "False"
	case string:
		return x
	case Num:
		return numText(x)
	case int:
		return strconv.Itoa(x)
	case float64:
		return FloatRepr(x)
	}
	return fmt.Sprint(v)
}

func numText(n Num) string {
	if n.Int {
		i, ok := new(big.Int).SetString(n.Raw, 10)
		if ok {
			return i.String()
		}
		return n.Raw
	}
	return FloatRepr(n.Float())
}

// Dumps is json.dumps(v, ensure_ascii=asciiOnly).
func Dumps(v any, asciiOnly bool) string {
	var b strings.Builder
	dump(&b, v, asciiOnly)
	return b.String()
}

func dump(b *strings.Builder, v any, asciiOnly bool) {
	switch x := v.(type) {
	case nil:
		b.WriteString("null")
	case bool:
		if x {
			b.WriteString("true")
		} else {
			b.WriteString("false")
		}
	case string:
		writeString(b, x, asciiOnly)
	case int:
		b.WriteString(strconv.Itoa(x))
	case float64:
		b.WriteString(floatJSON(x))
	case Num:
		if x.Int {
			b.WriteString(numText(x))
		} else {
			b.WriteString(floatJSON(x.Float()))
		}
	case []any:
		b.WriteByte('[')
		for i, item := range x {
			if i > 0 {
				b.WriteString(", ")
			}
			dump(b, item, asciiOnly)
		}
		b.WriteByte(']')
	case []string:
		b.WriteByte('[')
		for i, item := range x {
			if i > 0 {
				b.WriteString(", ")
			}
			writeString(b, item, asciiOnly)
		}
		b.WriteByte(']')
	case *Obj:
		b.WriteByte('{')
		for i, k := range x.Keys {
			if i > 0 {
				b.WriteString(", ")
			}
			writeString(b, k, asciiOnly)
			b.WriteString(": ")
			dump(b, x.Vals[k], asciiOnly)
		}
		b.WriteByte('}')
	default:
		panic(fmt.Sprintf("cannot encode %T", v))
	}
}

func floatJSON(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	return FloatRepr(f)
}
