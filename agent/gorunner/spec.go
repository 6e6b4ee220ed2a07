//go:build !shim

package main

import (
	"fmt"
	"strings"
)

// Spec is the step spec (agent/__init__.py lists its fields), checked as agent.check_spec
// checks it: the same problems, in the same words.
type Spec struct {
	raw       *Obj
	TaskRun   any
	Job       any
	Alias     string
	Type      string
	Workdir   string
	Dirs      *Obj
	Commands  []string
	Shell     string
	Envs      *Obj
	Caches    []any
	Metafile  string
	Result    string
	Timeout   *Num
	Mask      []string
	Forms     []string
	HasForms  bool
	Script    *string
	HasScript bool
	Notify    string
}

func typeName(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case string:
		return "text"
	case Num:
		if x.Int {
			return "an integer"
		}
		return "a number"
	case []any:
		return "a list"
	case *Obj:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

func strList(o *Obj, key string) ([]string, error) {
	v, ok := o.Get(key)
	if !ok || v == nil {
		return nil, nil
	}
	items, isList := v.([]any)
	if !isList {
		return nil, fmt.Errorf("`%s` must be a list of text, not %s", key, typeName(v))
	}
	out := make([]string, len(items))
	for i, item := range items {
		s, isStr := item.(string)
		if !isStr {
			return nil, fmt.Errorf("`%s` item %d must be text, not %s", key, i+1, typeName(item))
		}
		out[i] = s
	}
	return out, nil
}

func optStr(o *Obj, key string) (string, error) {
	v, ok := o.Get(key)
	if !ok || v == nil {
		return "", nil
	}
	s, isStr := v.(string)
	if !isStr {
		return "", fmt.Errorf("`%s` must be text, not %s", key, typeName(v))
	}
	return s, nil
}

func reqStr(o *Obj, key string) (string, error) {
	v, ok := o.Get(key)
	if !ok {
		return "", fmt.Errorf("`%s` is missing", key)
	}
	s, isStr := v.(string)
	if !isStr || s == "" {
		if isStr {
			return "", fmt.Errorf("`%s` is empty", key)
		}
		return "", fmt.Errorf("`%s` must be text, not %s", key, typeName(v))
	}
	return s, nil
}

func optObj(o *Obj, key string) (*Obj, error) {
	v, ok := o.Get(key)
	if !ok || v == nil {
		return NewObj(), nil
	}
	obj, isObj := v.(*Obj)
	if !isObj {
		return nil, fmt.Errorf("`%s` must be an object, not %s", key, typeName(v))
	}
	return obj, nil
}

// ParseSpec checks the decoded spec; the error names the field.
func ParseSpec(v any) (*Spec, error) {
	o, ok := v.(*Obj)
	if !ok {
		return nil, fmt.Errorf("the spec must be a JSON object, not %s", typeName(v))
	}
	s := &Spec{raw: o}
	var err error
	for _, key := range []string{"workdir", "metafile", "result"} {
		text, e := reqStr(o, key)
		if e != nil {
			return nil, e
		}
		switch key {
		case "workdir":
			s.Workdir = text
		case "metafile":
			s.Metafile = text
		case "result":
			s.Result = text
		}
	}
	if s.Commands, err = strList(o, "commands"); err != nil {
		return nil, err
	}
	if s.Mask, err = strList(o, "mask"); err != nil {
		return nil, err
	}
	if s.Dirs, err = optObj(o, "dirs"); err != nil {
		return nil, err
	}
	for _, k := range s.Dirs.Keys {
		if _, isStr := s.Dirs.Vals[k].(string); !isStr {
			return nil, fmt.Errorf("`dirs` entry %s must be text, not %s", PyRepr(k), typeName(s.Dirs.Vals[k]))
		}
	}
	if s.Envs, err = optObj(o, "envs"); err != nil {
		return nil, err
	}
	for _, k := range s.Envs.Keys {
		switch s.Envs.Vals[k].(type) {
		case string, Num, bool:
		default:
			return nil, fmt.Errorf("`envs` entry %s must be text, a number or a boolean, not %s", PyRepr(k), typeName(s.Envs.Vals[k]))
		}
	}
	if _, err = optObj(o, "params"); err != nil {
		return nil, err
	}
	for _, key := range []string{"shell", "notify", "type", "alias", "job"} {
		text, e := optStr(o, key)
		if v, present := o.Get(key); key == "alias" && present && v == nil {
			e = fmt.Errorf("`alias` must be text, not null") // an environment variable's value
		}
		if e != nil {
			return nil, e
		}
		switch key {
		case "shell":
			s.Shell = text
		case "notify":
			s.Notify = text
		case "type":
			s.Type = text
		case "alias":
			s.Alias = text
		}
	}
	s.Job, _ = o.Get("job")
	s.TaskRun, _ = o.Get("task_run")
	switch s.TaskRun.(type) {
	case nil, string, Num:
	default:
		return nil, fmt.Errorf("`task_run` must be a number or text, not %s", typeName(s.TaskRun))
	}
	if t, ok := o.Get("timeout"); ok && t != nil {
		n, isNum := t.(Num)
		if !isNum {
			return nil, fmt.Errorf("`timeout` must be a number of seconds or null, not %s", typeName(t))
		}
		if f := n.Float(); !n.Int && !(f > -1e18 && f < 1e18) { // NaN, Infinity, beyond any clock
			return nil, fmt.Errorf("`timeout` must be a finite number of seconds, not %s", FloatRepr(f))
		}
		s.Timeout = &n
	}
	if c, ok := o.Get("caches"); ok && c != nil {
		list, isList := c.([]any)
		if !isList {
			return nil, fmt.Errorf("`caches` must be a list, not %s", typeName(c))
		}
		for i, item := range list {
			entry, isObj := item.(*Obj)
			if !isObj {
				return nil, fmt.Errorf("`caches` item %d must be an object, not %s", i+1, typeName(item))
			}
			for _, key := range []string{"key", "path", "archive"} {
				if _, e := reqStr(entry, key); e != nil {
					return nil, fmt.Errorf("`caches` item %d: %s", i+1, e)
				}
			}
		}
		s.Caches = list
	}
	// What only the Go runner reads (written by the console beside the fields above).
	if _, ok := o.Get("mask_forms"); ok {
		s.HasForms = true
		if s.Forms, err = strList(o, "mask_forms"); err != nil {
			return nil, err
		}
	}
	if v, ok := o.Get("script"); ok {
		s.HasScript = true
		if v != nil {
			text, isStr := v.(string)
			if !isStr {
				return nil, fmt.Errorf("`script` must be text or null, not %s", typeName(v))
			}
			s.Script = &text
		}
	}
	return s, nil
}

// stepScript is agent.checkout.step_script for the steps that are not a checkout.
func (s *Spec) stepScript() (*string, bool) {
	if s.HasScript {
		return s.Script, true
	}
	if s.Type == "git-checkout" {
		return nil, false // rendered by the console only (agent.checkout)
	}
	var kept []string
	for _, c := range s.Commands {
		if PyStrip(c) != "" {
			kept = append(kept, c)
		}
	}
	if len(kept) == 0 {
		return nil, true
	}
	text := "set -e\n" + strings.Join(kept, "\n") + "\n"
	return &text, true
}
