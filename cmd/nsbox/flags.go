package main

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// flagSet parses the flags of one verb: --long, -s, --long=value,
// --long value, combined short booleans (-it), repeated flags, and "--"
// ending the flags. Flags and arguments may be interleaved.
type flagSet struct {
	verb  string
	usage string // "[flags] -- CMD [ARG...]"
	about string
	defs  []*flagDef
	byKey map[string]*flagDef
	seen  []string // long names of the flags given, in order
}

type flagDef struct {
	long, short string
	arg         string // name of the value; "" for a boolean
	help        string
	set         func(string) error
	hidden      bool
}

// newFlagSet and add are not inlined: each verb's flag definitions would get
// copies (binary size is resident size: a box's start maps every page).
//
//go:noinline
func newFlagSet(verb, usage, about string) *flagSet {
	return &flagSet{verb: verb, usage: usage, about: about, byKey: map[string]*flagDef{}}
}

//go:noinline
func (fs *flagSet) add(d *flagDef) {
	set := d.set
	d.set = func(v string) error {
		fs.seen = append(fs.seen, d.long)
		return set(v)
	}
	fs.defs = append(fs.defs, d)
	fs.byKey["--"+d.long] = d
	if d.short != "" {
		fs.byKey["-"+d.short] = d
	}
}

// boolVar defines a boolean flag; "--x=false" turns it off again.
func (fs *flagSet) boolVar(p *bool, long, short, help string) {
	fs.add(&flagDef{long: long, short: short, help: help, set: func(v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("want true or false, got %q", v)
		}
		*p = b
		return nil
	}})
}

func (fs *flagSet) stringVar(p *string, long, short, arg, help string) {
	fs.add(&flagDef{long: long, short: short, arg: arg, help: help, set: func(v string) error { *p = v; return nil }})
}

func (fs *flagSet) intVar(p *int, long, short, arg, help string) {
	fs.add(&flagDef{long: long, short: short, arg: arg, help: help, set: func(v string) error {
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("want a number, got %q", v)
		}
		*p = n
		return nil
	}})
}

// listVar defines a repeatable flag.
func (fs *flagSet) listVar(p *[]string, long, short, arg, help string) {
	fs.add(&flagDef{long: long, short: short, arg: arg, help: help, set: func(v string) error { *p = append(*p, v); return nil }})
}

func (fs *flagSet) funcVar(long, short, arg, help string, f func(string) error) {
	fs.add(&flagDef{long: long, short: short, arg: arg, help: help, set: f})
}

// usageError is bad command-line input: exit status 125 with a hint.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func (fs *flagSet) errorf(format string, a ...any) error {
	return &usageError{fmt.Sprintf(format, a...) + fmt.Sprintf(" (see 'nsbox %s --help')", fs.verb)}
}

// errHelp asks for the verb's help text.
var errHelp = fmt.Errorf("help requested")

// parseUntilArg parses flags up to the first argument that is not one, and
// returns that argument and everything after it untouched (for verbs like
// exec, whose command follows the box id).
func (fs *flagSet) parseUntilArg(args []string) (first string, rest []string, err error) {
	i := 0
	for i < len(args) {
		a := args[i]
		if a == "--" {
			i++
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			break
		}
		n := 1
		if d := fs.byKey[strings.SplitN(a, "=", 2)[0]]; d != nil && d.arg != "" && !strings.Contains(a, "=") && strings.HasPrefix(a, "--") {
			n = 2
		} else if d != nil && d.arg != "" && !strings.HasPrefix(a, "--") && len(a) == 2 {
			n = 2
		}
		if i+n > len(args) {
			n = len(args) - i
		}
		if _, _, _, err := fs.parse(args[i : i+n]); err != nil {
			return "", nil, err
		}
		i += n
	}
	if i >= len(args) {
		return "", nil, fs.errorf("want %s", fs.usage)
	}
	return args[i], args[i+1:], nil
}

// parse returns the arguments that are not flags, and, separately, everything
// after "--" (dashdash is true when "--" was given).
func (fs *flagSet) parse(args []string) (pos, rest []string, dashdash bool, err error) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return pos, args[i+1:], true, nil
		case a == "--help" || a == "-h":
			return nil, nil, false, errHelp
		case strings.HasPrefix(a, "--"):
			name, val, hasVal := strings.Cut(a, "=")
			d := fs.byKey[name]
			if d == nil {
				return nil, nil, false, fs.errorf("unknown flag %s for 'nsbox %s'", name, fs.verb)
			}
			if d.arg == "" && !hasVal {
				val = "true"
			} else if !hasVal {
				if i+1 >= len(args) {
					return nil, nil, false, fs.errorf("flag %s needs a value (%s)", name, d.arg)
				}
				i++
				val = args[i]
			}
			if err := d.set(val); err != nil {
				return nil, nil, false, fs.errorf("%s %s: %v", name, val, err)
			}
		case strings.HasPrefix(a, "-") && len(a) > 1:
			// -x, -xVALUE, -x VALUE, or combined booleans -abc.
			for j := 1; j < len(a); j++ {
				name := "-" + a[j:j+1]
				d := fs.byKey[name]
				if d == nil {
					return nil, nil, false, fs.errorf("unknown flag %s for 'nsbox %s'", name, fs.verb)
				}
				if d.arg == "" {
					if v, ok := strings.CutPrefix(a[j+1:], "="); ok {
						if err := d.set(v); err != nil {
							return nil, nil, false, fs.errorf("%s=%s: %v", name, v, err)
						}
						break
					}
					d.set("true")
					continue
				}
				val := a[j+1:]
				if val == "" {
					if i+1 >= len(args) {
						return nil, nil, false, fs.errorf("flag %s needs a value (%s)", name, d.arg)
					}
					i++
					val = args[i]
				}
				if err := d.set(strings.TrimPrefix(val, "=")); err != nil {
					return nil, nil, false, fs.errorf("%s %s: %v", name, val, err)
				}
				break
			}
		default:
			pos = append(pos, a)
		}
	}
	return pos, nil, false, nil
}

// help renders the verb's usage and flags.
func (fs *flagSet) help() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Usage: nsbox %s %s\n\n%s\n", fs.verb, fs.usage, fs.about)
	if len(fs.defs) == 0 {
		return b.String()
	}
	b.WriteString("\nFlags:\n")
	defs := append([]*flagDef(nil), fs.defs...)
	sort.SliceStable(defs, func(i, j int) bool { return defs[i].long < defs[j].long })
	for _, d := range defs {
		if d.hidden {
			continue
		}
		name := "    --" + d.long
		if d.short != "" {
			name = "-" + d.short + ", --" + d.long
		}
		if d.arg != "" {
			name += " " + d.arg
		}
		fmt.Fprintf(&b, "  %-32s %s\n", name, d.help)
	}
	return b.String()
}
