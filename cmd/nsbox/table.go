package main

// Listings with columns chosen by -o, as lsns and ps lay them out, shared
// by `nsbox ns ls` and `nsbox ps`.

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/nsbox/nsbox/internal/specjson"
)

// column is one column of a listing: its header, a line of help, and the
// value of a row as text and as JSON (nil: null).
type column[R any] struct {
	name  string
	help  string
	right bool // numbers are aligned to the right
	text  func(R) string
	json  func(R) any
}

// selectColumns resolves -o: a comma-separated list of column names (in
// any case), or, starting with "+", names to add to the defaults.
func selectColumns[R any](all []column[R], list string, defaults []string) ([]column[R], error) {
	names := defaults
	if list != "" {
		if add, ok := strings.CutPrefix(list, "+"); ok {
			names = append(append([]string(nil), defaults...), strings.Split(add, ",")...)
		} else {
			names = strings.Split(list, ",")
		}
	}
	var cols []column[R]
	for _, n := range names {
		c, ok := columnNamed(all, strings.ToUpper(strings.TrimSpace(n)))
		if !ok {
			return nil, fmt.Errorf("unknown column: %s", n)
		}
		cols = append(cols, c)
	}
	return cols, nil
}

func columnNamed[R any](all []column[R], name string) (column[R], bool) {
	for _, c := range all {
		if c.name == name {
			return c, true
		}
	}
	return column[R]{}, false
}

// columnHelp lists the columns for a verb's help.
func columnHelp[R any](all []column[R], defaults []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\nColumns (-o LIST, or -o +LIST to add to the default %s):\n", strings.Join(defaults, ","))
	for _, c := range all {
		fmt.Fprintf(&b, "  %-10s %s\n", c.name, c.help)
	}
	return b.String()
}

// writeTable lays out rows under the columns, one space apart, numbers to
// the right, the last column unpadded.
func writeTable[R any](w io.Writer, cols []column[R], rows []R, headings bool) error {
	cells := make([][]string, 0, len(rows)+1)
	if headings {
		head := make([]string, len(cols))
		for i, c := range cols {
			head[i] = c.name
		}
		cells = append(cells, head)
	}
	for _, r := range rows {
		line := make([]string, len(cols))
		for i, c := range cols {
			line[i] = c.text(r)
		}
		cells = append(cells, line)
	}
	width := make([]int, len(cols))
	for _, line := range cells {
		for i, s := range line {
			width[i] = max(width[i], len(s))
		}
	}
	var b strings.Builder
	for _, line := range cells {
		for i, s := range line {
			pad := strings.Repeat(" ", width[i]-len(s))
			switch {
			case cols[i].right:
				b.WriteString(pad + s)
			case i == len(cols)-1:
				b.WriteString(s)
			default:
				b.WriteString(s + pad)
			}
			if i < len(cols)-1 {
				b.WriteByte(' ')
			}
		}
		b.WriteByte('\n')
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// jsonRows returns the rows as JSON objects keyed by the columns' names
// in lower case, in the columns' order.
func jsonRows[R any](cols []column[R], rows []R) []jsonObject {
	out := make([]jsonObject, 0, len(rows))
	for _, r := range rows {
		o := make(jsonObject, len(cols))
		for i, c := range cols {
			o[i] = jsonField{strings.ToLower(c.name), c.json(r)}
		}
		out = append(out, o)
	}
	return out
}

// jsonObject is a JSON object whose keys keep their order.
type jsonObject []jsonField

type jsonField struct {
	key   string
	value any
}

// MarshalJSON writes the fields in order.
func (o jsonObject) MarshalJSON() ([]byte, error) {
	b := []byte{'{'}
	var err error
	for i, f := range o {
		if i > 0 {
			b = append(b, ',')
		}
		if b, err = appendJSON(b, f.key); err != nil {
			return nil, err
		}
		if b, err = appendJSON(append(b, ':'), f.value); err != nil {
			return nil, err
		}
	}
	return append(b, '}'), nil
}

// appendJSON appends v as JSON: numbers and plain strings (the bulk of a
// listing of hundreds of rows) directly, the rest through specjson.
func appendJSON(b []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case int:
		return strconv.AppendInt(b, int64(x), 10), nil
	case uint64:
		return strconv.AppendUint(b, x, 10), nil
	case string:
		if plain(x) {
			return append(append(append(b, '"'), x...), '"'), nil
		}
	}
	out, err := specjson.Marshal(v)
	return append(b, out...), err
}

// plain reports whether s is the same as a JSON string: printable ASCII
// that encoding/json would not escape.
func plain(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

// writeIndented writes v as indented JSON, as lsns --json does.
func writeIndented(w io.Writer, v any) error {
	b, err := specjson.MarshalIndent(v, "", "   ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// nonZero is n as JSON, or null for 0 (nothing known).
func nonZero[N int | uint64](n N) any {
	if n == 0 {
		return nil
	}
	return n
}

// numText is n as text, or "" for 0.
func numText[N int | uint64](n N) string {
	if n == 0 {
		return ""
	}
	return strconv.FormatUint(uint64(n), 10)
}

// orNull is s as JSON, or null when empty.
func orNull(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// userName returns the name of uid in /etc/passwd, or the number.
func userName(uid int) string {
	if name, ok := passwdNames()[uid]; ok {
		return name
	}
	return strconv.Itoa(uid)
}

// passwdNames reads /etc/passwd once.
var passwdNames = sync.OnceValue(func() map[int]string {
	names := map[int]string{}
	b, _ := os.ReadFile("/etc/passwd")
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.SplitN(line, ":", 4)
		if len(f) < 3 {
			continue
		}
		if uid, err := strconv.Atoi(f[2]); err == nil {
			if _, dup := names[uid]; !dup {
				names[uid] = f[0]
			}
		}
	}
	return names
})
