// The Masker of agent/masking.py: every form of every secret replaced with ******, longest first,
// and a secret split across two consecutive lines of one stream. The forms themselves
// (masking.forms: base64, hex, URL-encoded, JSON-escaped, reversed) are computed by the console,
// in Python, and come in the spec (`mask_forms`): only this class is ported, not forms().
package main

import (
	"regexp"
	"sort"
	"strings"
	"unicode/utf8"
)

const (
	MASK         = "******"
	splitMinPart = 4 // masking.SPLIT_MIN_PART
)

type secretText struct {
	text   string
	prefix []int // prefix[k]: the byte length of the secret's first k characters
}

type pendingEnd struct {
	secret *secretText
	seen   int // characters of the secret's start the previous line ended with
}

type Masker struct {
	pattern    *regexp.Regexp
	splittable []*secretText
	pending    map[string][]pendingEnd
}

func byLengthDesc(values []string) []string {
	seen := map[string]bool{}
	out := []string{}
	for _, v := range values {
		if v != "" && !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		return utf8.RuneCountInString(out[i]) > utf8.RuneCountInString(out[j])
	})
	return out
}

// NewMasker: secrets as the spec's `mask` lists them, forms as masking.forms() gave them for
// those secrets (the console's `mask_forms`).
func NewMasker(secrets, forms []string) *Masker {
	m := &Masker{pending: map[string][]pendingEnd{}}
	all := byLengthDesc(forms)
	if len(all) > 0 {
		quoted := make([]string, len(all))
		for i, f := range all {
			quoted[i] = regexp.QuoteMeta(f)
		}
		m.pattern = regexp.MustCompile(strings.Join(quoted, "|")) // leftmost-first, as Python's re
	}
	for _, s := range byLengthDesc(secrets) {
		if utf8.RuneCountInString(s) < 2 {
			continue
		}
		st := &secretText{text: s, prefix: []int{0}}
		for i := range s {
			if i > 0 {
				st.prefix = append(st.prefix, i)
			}
		}
		st.prefix = append(st.prefix, len(s))
		m.splittable = append(m.splittable, st)
	}
	return m
}

// Mask is Masker.__call__.
func (m *Masker) Mask(text string) string {
	if m.pattern == nil {
		return text
	}
	return m.pattern.ReplaceAllLiteralString(text, MASK)
}

// Line is Masker.line: one line of `stream`; lines of one stream come in order.
func (m *Masker) Line(text, stream string) string {
	if m.pattern == nil {
		return text
	}
	pending := m.pending[stream]
	delete(m.pending, stream)
	head, body := "", text
	for _, p := range pending { // the previous line ended with secret[:seen]
		stripped := PyLstrip(body)
		rest := p.secret.text[p.secret.prefix[p.seen]:]
		if rest != "" && strings.HasPrefix(stripped, rest) {
			head = MASK
			body = stripped[len(rest):]
			break
		}
	}
	var ends []pendingEnd
	cut := 0 // characters
	trimmed := PyRstrip(body)
	chars := utf8.RuneCountInString(trimmed)
	for _, s := range m.splittable {
		chars1 := len(s.prefix) - 1 // the secret's length in characters
		for seen := min(chars1-1, chars); seen > 0; seen-- {
			if strings.HasSuffix(trimmed, s.text[:s.prefix[seen]]) {
				ends = append(ends, pendingEnd{s, seen})
				if seen >= splitMinPart {
					cut = max(cut, seen)
				}
				break
			}
		}
	}
	if len(ends) > 0 {
		m.pending[stream] = ends
	}
	if cut > 0 {
		tailSpace := body[len(trimmed):]
		keep := trimmed
		for i := 0; i < cut; i++ {
			_, size := utf8.DecodeLastRuneInString(keep)
			keep = keep[:len(keep)-size]
		}
		return head + m.Mask(keep) + MASK + tailSpace
	}
	return head + m.Mask(body)
}
