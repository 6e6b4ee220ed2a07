//go:build !shim

package main

import (
	"encoding/hex"
	"fmt"
	"io"
	"os"
)

// parity: `dice-step _parity` (tests only, tests/test_step_runner_parity.py): reads one JSON
// request on stdin and answers what this program makes of it, to compare with the Python agent:
//
//	{"secrets": [...], "forms": [...], "lines": [[stream, text], ...], "values": [...],
//	 "bytes": [hex, ...], "texts": [...], "floats": [...], "timeouts": [number, ...]}
//	-> {"lines": [...], "values": [...], "decoded": [...], "splitlines": [[...]], "strip": [...],
//	    "json": [...], "json_ascii": [...], "repr": [...], "floats": [...], "timeouts": [...]}
func parity() int {
	data, err := io.ReadAll(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	v, err := Loads(string(data))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	req := v.(*Obj)
	list := func(k string) []any { x, _ := req.Vals[k].([]any); return x }
	strs := func(k string) []string {
		out := []string{}
		for _, x := range list(k) {
			out = append(out, x.(string))
		}
		return out
	}
	m := NewMasker(strs("secrets"), strs("forms"))
	out := NewObj()
	masked := []any{}
	for _, item := range list("lines") {
		pair := item.([]any)
		masked = append(masked, m.Line(pair[1].(string), pair[0].(string)))
	}
	out.Set("lines", masked)
	values := []any{}
	for _, s := range strs("values") {
		values = append(values, m.Mask(s))
	}
	out.Set("values", values)
	decoded := []any{}
	for _, h := range strs("bytes") {
		b, _ := hex.DecodeString(h)
		decoded = append(decoded, DecodeReplace(b))
	}
	out.Set("decoded", decoded)
	split, strip, js, jsa, reprs := []any{}, []any{}, []any{}, []any{}, []any{}
	for _, t := range strs("texts") {
		parts := []any{}
		for _, p := range SplitLines(t) {
			parts = append(parts, p)
		}
		split = append(split, parts)
		strip = append(strip, []any{PyStrip(t), PyLstrip(t), PyRstrip(t), RstripNewlines(t)})
		js = append(js, Dumps(t, false))
		jsa = append(jsa, Dumps(t, true))
		reprs = append(reprs, PyRepr(t))
	}
	out.Set("splitlines", split)
	out.Set("strip", strip)
	out.Set("json", js)
	out.Set("json_ascii", jsa)
	out.Set("repr", reprs)
	floats, timeouts := []any{}, []any{}
	for _, f := range list("floats") {
		n := f.(Num)
		floats = append(floats, []any{FloatRepr(n.Float()), Dumps(round6(n.Float()), false)})
	}
	for _, t := range list("timeouts") {
		timeouts = append(timeouts, formatG(t.(Num)))
	}
	out.Set("floats", floats)
	out.Set("timeouts", timeouts)
	fmt.Println(Dumps(out, false))
	return 0
}
