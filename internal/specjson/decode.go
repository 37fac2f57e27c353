package specjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"unicode/utf16"
	"unicode/utf8"
)

// Unmarshal decodes data into v, a non-nil pointer, as encoding/json.Unmarshal
// does for the types the spec and state use; a value of the wrong type is a
// *json.UnmarshalTypeError whose Field is the dotted path to it.
//
// Like Marshal it avoids encoding/json's first-use cost, which for an OCI
// spec (hundreds of reachable types) is most of a short-lived command's
// time: one pass over the document assigns each value as it is read,
// looking at only the types of the values present.
func Unmarshal(data []byte, v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return errors.New("specjson: Unmarshal needs a non-nil pointer")
	}
	d := &decoder{data: data}
	if err := d.value(rv.Elem(), ""); err != nil {
		return err
	}
	d.space()
	if d.i != len(d.data) {
		return d.syntax("after the top-level value")
	}
	return nil
}

type decoder struct {
	data []byte
	i    int
}

var (
	unmarshalerType = reflect.TypeFor[json.Unmarshaler]()
	emptyInterface  = reflect.TypeFor[any]()
)

func (d *decoder) space() {
	for d.i < len(d.data) {
		switch d.data[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *decoder) syntax(what string) error {
	if d.i >= len(d.data) {
		return errors.New("unexpected end of JSON input")
	}
	return fmt.Errorf("invalid character %q %s (offset %d)", d.data[d.i], what, d.i)
}

// peek returns the next non-space byte (0 at the end).
func (d *decoder) peek() byte {
	d.space()
	if d.i >= len(d.data) {
		return 0
	}
	return d.data[d.i]
}

func (d *decoder) literal(word string) bool {
	if bytes.HasPrefix(d.data[d.i:], []byte(word)) {
		d.i += len(word)
		return true
	}
	return false
}

// value decodes the next value into v.
func (d *decoder) value(v reflect.Value, path string) error {
	c := d.peek()
	t := v.Type()
	if c == 'n' {
		if !d.literal("null") {
			return d.syntax("in literal null")
		}
		switch t.Kind() {
		case reflect.Pointer, reflect.Map, reflect.Slice, reflect.Interface:
			v.SetZero()
		}
		return nil
	}
	if t.Kind() != reflect.Pointer && reflect.PointerTo(t).Implements(unmarshalerType) {
		start := d.i
		if err := d.skip(); err != nil {
			return err
		}
		return v.Addr().Interface().(json.Unmarshaler).UnmarshalJSON(d.data[start:d.i])
	}
	switch t.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(t.Elem()))
		}
		return d.value(v.Elem(), path)
	case reflect.Interface:
		if t != emptyInterface {
			return d.mismatch(c, t, path)
		}
		x, err := d.generic()
		if err != nil {
			return err
		}
		if x != nil {
			v.Set(reflect.ValueOf(x))
		}
		return nil
	}
	switch c {
	case '{':
		switch t.Kind() {
		case reflect.Struct:
			return d.object(path, func(key string) (reflect.Value, string, bool) {
				f, ok := fieldByName(v, key)
				return f.v, join(path, f.name), ok
			}, nil)
		case reflect.Map:
			if t.Key().Kind() != reflect.String {
				return d.mismatch(c, t, path)
			}
			if v.IsNil() {
				v.Set(reflect.MakeMap(t))
			}
			var e reflect.Value
			return d.object(path, func(key string) (reflect.Value, string, bool) {
				e = reflect.New(t.Elem()).Elem()
				return e, join(path, key), true
			}, func(key string) {
				v.SetMapIndex(reflect.ValueOf(key).Convert(t.Key()), e)
			})
		}
	case '[':
		switch t.Kind() {
		case reflect.Slice:
			s := reflect.MakeSlice(t, 0, 4)
			n := 0
			err := d.array(func() (reflect.Value, string) {
				if n == s.Cap() {
					s = reflect.AppendSlice(s, reflect.MakeSlice(t, s.Cap(), s.Cap()))
				}
				s = s.Slice(0, n+1)
				n++
				return s.Index(n - 1), path
			})
			if err == nil {
				v.Set(s)
			}
			return err
		case reflect.Array:
			n := 0
			var sink reflect.Value
			err := d.array(func() (reflect.Value, string) {
				n++
				if n <= v.Len() {
					return v.Index(n - 1), path
				}
				sink = reflect.New(t.Elem()).Elem()
				return sink, path
			})
			for i := n; i < v.Len(); i++ {
				v.Index(i).SetZero()
			}
			return err
		}
	case '"':
		s, err := d.str()
		if err != nil {
			return err
		}
		if t.Kind() != reflect.String {
			return &json.UnmarshalTypeError{Value: "string", Type: t, Field: path}
		}
		v.SetString(s)
		return nil
	case 't', 'f':
		b := c == 't'
		if !(b && d.literal("true") || !b && d.literal("false")) {
			return d.syntax("in literal")
		}
		if t.Kind() != reflect.Bool {
			return &json.UnmarshalTypeError{Value: "bool", Type: t, Field: path}
		}
		v.SetBool(b)
		return nil
	default:
		if c == '-' || c >= '0' && c <= '9' {
			n, err := d.number()
			if err != nil {
				return err
			}
			return setNumber(v, n, path)
		}
		return d.syntax("looking for beginning of value")
	}
	return d.mismatch(c, t, path)
}

// mismatch reports a value of the wrong JSON type (and skips it).
func (d *decoder) mismatch(c byte, t reflect.Type, path string) error {
	what := map[byte]string{'{': "object", '[': "array", '"': "string", 't': "bool", 'f': "bool"}[c]
	if what == "" {
		what = "number"
	}
	if err := d.skip(); err != nil {
		return err
	}
	return &json.UnmarshalTypeError{Value: what, Type: t, Field: path}
}

func setNumber(v reflect.Value, n, path string) error {
	t := v.Type()
	bad := func() error { return &json.UnmarshalTypeError{Value: "number " + n, Type: t, Field: path} }
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		i, err := strconv.ParseInt(n, 10, t.Bits())
		if err != nil {
			return bad()
		}
		v.SetInt(i)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		u, err := strconv.ParseUint(n, 10, t.Bits())
		if err != nil {
			return bad()
		}
		v.SetUint(u)
	case reflect.Float32, reflect.Float64:
		f, err := strconv.ParseFloat(n, t.Bits())
		if err != nil {
			return bad()
		}
		v.SetFloat(f)
	default:
		return &json.UnmarshalTypeError{Value: "number", Type: t, Field: path}
	}
	return nil
}

// object reads an object: for each key, target gives where its value goes
// (ok false: skip it), and then, if not nil, is called.
func (d *decoder) object(path string, target func(key string) (reflect.Value, string, bool), then func(key string)) error {
	d.i++ // {
	if d.peek() == '}' {
		d.i++
		return nil
	}
	for {
		if d.peek() != '"' {
			return d.syntax("looking for beginning of object key string")
		}
		key, err := d.str()
		if err != nil {
			return err
		}
		if d.peek() != ':' {
			return d.syntax("after object key")
		}
		d.i++
		if fv, p, ok := target(key); ok {
			if err := d.value(fv, p); err != nil {
				return err
			}
			if then != nil {
				then(key)
			}
		} else if err := d.skip(); err != nil {
			return err
		}
		switch d.peek() {
		case ',':
			d.i++
		case '}':
			d.i++
			return nil
		default:
			return d.syntax("after object key:value pair")
		}
	}
}

// array reads an array, decoding each element into the value next gives.
func (d *decoder) array(next func() (reflect.Value, string)) error {
	d.i++ // [
	if d.peek() == ']' {
		d.i++
		return nil
	}
	for {
		e, p := next()
		if err := d.value(e, p); err != nil {
			return err
		}
		switch d.peek() {
		case ',':
			d.i++
		case ']':
			d.i++
			return nil
		default:
			return d.syntax("after array element")
		}
	}
}

// skip passes over one value, checking its syntax, without keeping it.
func (d *decoder) skip() error {
	switch c := d.peek(); {
	case c == '{':
		d.i++
		if d.peek() == '}' {
			d.i++
			return nil
		}
		for {
			if d.peek() != '"' {
				return d.syntax("looking for beginning of object key string")
			}
			if err := d.skipString(); err != nil {
				return err
			}
			if d.peek() != ':' {
				return d.syntax("after object key")
			}
			d.i++
			if err := d.skip(); err != nil {
				return err
			}
			switch d.peek() {
			case ',':
				d.i++
			case '}':
				d.i++
				return nil
			default:
				return d.syntax("after object key:value pair")
			}
		}
	case c == '[':
		d.i++
		if d.peek() == ']' {
			d.i++
			return nil
		}
		for {
			if err := d.skip(); err != nil {
				return err
			}
			switch d.peek() {
			case ',':
				d.i++
			case ']':
				d.i++
				return nil
			default:
				return d.syntax("after array element")
			}
		}
	case c == '"':
		return d.skipString()
	}
	_, err := d.generic() // a scalar
	return err
}

// skipString passes over a string, checking its escapes.
func (d *decoder) skipString() error {
	start := d.i + 1
	for i := start; i < len(d.data); i++ {
		switch c := d.data[i]; {
		case c == '"':
			d.i = i + 1
			return nil
		case c == '\\' || c < 0x20:
			d.i++
			_, err := d.strSlow(start)
			return err
		}
	}
	d.i = len(d.data)
	return d.syntax("in string literal")
}

// generic decodes the next value as encoding/json does into an any.
func (d *decoder) generic() (any, error) {
	switch c := d.peek(); {
	case c == '{':
		d.i++
		m := map[string]any{}
		if d.peek() == '}' {
			d.i++
			return m, nil
		}
		for {
			if d.peek() != '"' {
				return nil, d.syntax("looking for beginning of object key string")
			}
			key, err := d.str()
			if err != nil {
				return nil, err
			}
			if d.peek() != ':' {
				return nil, d.syntax("after object key")
			}
			d.i++
			if m[key], err = d.generic(); err != nil {
				return nil, err
			}
			switch d.peek() {
			case ',':
				d.i++
			case '}':
				d.i++
				return m, nil
			default:
				return nil, d.syntax("after object key:value pair")
			}
		}
	case c == '[':
		d.i++
		a := []any{}
		if d.peek() == ']' {
			d.i++
			return a, nil
		}
		for {
			x, err := d.generic()
			if err != nil {
				return nil, err
			}
			a = append(a, x)
			switch d.peek() {
			case ',':
				d.i++
			case ']':
				d.i++
				return a, nil
			default:
				return nil, d.syntax("after array element")
			}
		}
	case c == '"':
		return d.str()
	case c == 't' || c == 'f':
		if d.literal("true") {
			return true, nil
		}
		if d.literal("false") {
			return false, nil
		}
		return nil, d.syntax("in literal")
	case c == 'n':
		if d.literal("null") {
			return nil, nil
		}
		return nil, d.syntax("in literal null")
	case c == '-' || c >= '0' && c <= '9':
		n, err := d.number()
		if err != nil {
			return nil, err
		}
		return strconv.ParseFloat(n, 64)
	}
	return nil, d.syntax("looking for beginning of value")
}

// number reads a number as JSON's grammar has it.
func (d *decoder) number() (string, error) {
	start := d.i
	digits := func() int {
		n := 0
		for d.i < len(d.data) && d.data[d.i] >= '0' && d.data[d.i] <= '9' {
			d.i++
			n++
		}
		return n
	}
	if d.data[d.i] == '-' {
		d.i++
	}
	if d.i < len(d.data) && d.data[d.i] == '0' {
		d.i++
	} else if digits() == 0 {
		return "", d.syntax("in numeric literal")
	}
	if d.i < len(d.data) && d.data[d.i] == '.' {
		d.i++
		if digits() == 0 {
			return "", d.syntax("after decimal point in numeric literal")
		}
	}
	if d.i < len(d.data) && (d.data[d.i] == 'e' || d.data[d.i] == 'E') {
		d.i++
		if d.i < len(d.data) && (d.data[d.i] == '+' || d.data[d.i] == '-') {
			d.i++
		}
		if digits() == 0 {
			return "", d.syntax("in exponent of numeric literal")
		}
	}
	return string(d.data[start:d.i]), nil
}

// str reads a string, replacing invalid UTF-8 with U+FFFD as encoding/json
// does.
func (d *decoder) str() (string, error) {
	d.i++ // "
	start := d.i
	for d.i < len(d.data) {
		c := d.data[d.i]
		if c == '"' {
			s := d.data[start:d.i]
			d.i++
			if utf8.Valid(s) {
				return string(s), nil
			}
			return strings.ToValidUTF8(string(s), "\uFFFD"), nil
		}
		if c == '\\' || c < 0x20 {
			return d.strSlow(start)
		}
		d.i++
	}
	return "", d.syntax("in string literal")
}

// strSlow reads a string with escapes, from its first byte at start.
func (d *decoder) strSlow(start int) (string, error) {
	d.i = start
	var b []byte
	for d.i < len(d.data) {
		c := d.data[d.i]
		switch {
		case c == '"':
			d.i++
			return string(b), nil
		case c < 0x20:
			return "", d.syntax("in string literal")
		case c == '\\':
			if d.i+1 >= len(d.data) {
				return "", d.syntax("in string escape code")
			}
			e := d.data[d.i+1]
			d.i += 2
			switch e {
			case '"', '\\', '/':
				b = append(b, e)
			case 'b':
				b = append(b, '\b')
			case 'f':
				b = append(b, '\f')
			case 'n':
				b = append(b, '\n')
			case 'r':
				b = append(b, '\r')
			case 't':
				b = append(b, '\t')
			case 'u':
				r, ok := d.hex4()
				if !ok {
					return "", d.syntax("in \\u hexadecimal character escape")
				}
				if utf16.IsSurrogate(r) {
					save := d.i
					if d.i+1 < len(d.data) && d.data[d.i] == '\\' && d.data[d.i+1] == 'u' {
						d.i += 2
						if r2, ok := d.hex4(); ok {
							if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
								b = utf8.AppendRune(b, dec)
								continue
							}
						}
					}
					d.i = save
					r = utf8.RuneError
				}
				b = utf8.AppendRune(b, r)
			default:
				d.i--
				return "", d.syntax("in string escape code")
			}
		default:
			r, size := utf8.DecodeRune(d.data[d.i:])
			if r == utf8.RuneError && size == 1 {
				b = append(b, "\uFFFD"...)
			} else {
				b = append(b, d.data[d.i:d.i+size]...)
			}
			d.i += size
		}
	}
	return "", d.syntax("in string literal")
}

func (d *decoder) hex4() (rune, bool) {
	if d.i+4 > len(d.data) {
		return 0, false
	}
	n, err := strconv.ParseUint(string(d.data[d.i:d.i+4]), 16, 32)
	if err != nil {
		return 0, false
	}
	d.i += 4
	return rune(n), true
}

// field is where a key of an object goes in a struct.
type field struct {
	v    reflect.Value
	name string
}

// fieldInfo is a struct field as JSON names it: its index path (through
// embedded structs) and name.
type fieldInfo struct {
	index []int
	name  string
}

var fieldCache sync.Map // reflect.Type → []fieldInfo

func fieldsOf(t reflect.Type) []fieldInfo {
	if f, ok := fieldCache.Load(t); ok {
		return f.([]fieldInfo)
	}
	var out []fieldInfo
	var walk func(t reflect.Type, index []int)
	walk = func(t reflect.Type, index []int) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag := f.Tag.Get("json")
			if tag == "-" {
				continue
			}
			name, _, _ := strings.Cut(tag, ",")
			idx := append(append([]int(nil), index...), i)
			if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
				walk(f.Type, idx)
				continue
			}
			if !f.IsExported() {
				continue
			}
			if name == "" {
				name = f.Name
			}
			out = append(out, fieldInfo{index: idx, name: name})
		}
	}
	walk(t, nil)
	fieldCache.Store(t, out)
	return out
}

// fieldByName finds the field of struct v for key: its exact name, else one
// equal to it but for case (as encoding/json matches).
func fieldByName(v reflect.Value, key string) (field, bool) {
	fs := fieldsOf(v.Type())
	for _, f := range fs {
		if f.name == key {
			return field{v.FieldByIndex(f.index), f.name}, true
		}
	}
	for _, f := range fs {
		if strings.EqualFold(f.name, key) {
			return field{v.FieldByIndex(f.index), f.name}, true
		}
	}
	return field{}, false
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}
