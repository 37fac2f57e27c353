package specjson

import (
	"bytes"
	"encoding"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
)

// TypeError is a JSON value of the wrong type for the field it goes to.
type TypeError struct {
	Value string       // "string", "number 7", ...
	Type  reflect.Type // of the field
	Field string       // dotted path from the top
}

func (e *TypeError) Error() string {
	return "json: cannot unmarshal " + e.Value + " into field " + e.Field + " of type " + e.Type.String()
}

// Unmarshal decodes data into v, a non-nil pointer, as encoding/json.Unmarshal
// does for the types the spec and state use; a value of the wrong type is a
// *TypeError whose Field is the dotted path to it.
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
	unmarshalerType     = reflect.TypeFor[unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
	emptyInterface      = reflect.TypeFor[any]()
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
		return v.Addr().Interface().(unmarshaler).UnmarshalJSON(d.data[start:d.i])
	}
	if c == '"' && t.Kind() != reflect.Pointer && reflect.PointerTo(t).Implements(textUnmarshalerType) {
		s, err := d.str()
		if err != nil {
			return err
		}
		if err := v.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(s)); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		return nil
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
			return d.each(func(key string) error {
				f, ok := fieldByName(v, key)
				if !ok {
					return d.skip()
				}
				return d.value(f.v, join(path, f.name))
			})
		case reflect.Map:
			if t.Key().Kind() != reflect.String {
				return d.mismatch(c, t, path)
			}
			if v.IsNil() {
				v.Set(reflect.MakeMap(t))
			}
			return d.each(func(key string) error {
				e := reflect.New(t.Elem()).Elem()
				if err := d.value(e, join(path, key)); err != nil {
					return err
				}
				v.SetMapIndex(reflect.ValueOf(key).Convert(t.Key()), e)
				return nil
			})
		}
	case '[':
		switch t.Kind() {
		case reflect.Slice:
			// Elements are decoded in place, in a slice grown by doubling.
			s := reflect.MakeSlice(t, 0, 4)
			err := d.each(func(string) error {
				n := s.Len()
				if n == s.Cap() {
					grown := reflect.MakeSlice(t, n, 2*n)
					reflect.Copy(grown, s)
					s = grown
				}
				s = s.Slice(0, n+1)
				return d.value(s.Index(n), path)
			})
			if err == nil {
				v.Set(s)
			}
			return err
		case reflect.Array:
			n := 0
			err := d.each(func(string) error {
				n++
				if n <= v.Len() {
					return d.value(v.Index(n-1), path)
				}
				return d.skip()
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
			return &TypeError{Value: "string", Type: t, Field: path}
		}
		v.SetString(s)
		return nil
	case 't', 'f':
		b := c == 't'
		if !(b && d.literal("true") || !b && d.literal("false")) {
			return d.syntax("in literal")
		}
		if t.Kind() != reflect.Bool {
			return &TypeError{Value: "bool", Type: t, Field: path}
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
	return &TypeError{Value: what, Type: t, Field: path}
}

func setNumber(v reflect.Value, n, path string) error {
	t := v.Type()
	bad := func() error { return &TypeError{Value: "number " + n, Type: t, Field: path} }
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
		return &TypeError{Value: "number", Type: t, Field: path}
	}
	return nil
}

// each reads an object or an array (the next byte is its '{' or '['),
// calling elem for each member with its key ("" in an array) once the
// decoder is at the member's value, which elem must consume.
func (d *decoder) each(elem func(key string) error) error {
	object := d.data[d.i] == '{'
	end, what := byte(']'), "after array element"
	if object {
		end, what = '}', "after object key:value pair"
	}
	d.i++
	if d.peek() == end {
		d.i++
		return nil
	}
	for {
		var key string
		if object {
			if d.peek() != '"' {
				return d.syntax("looking for beginning of object key string")
			}
			var err error
			if key, err = d.str(); err != nil {
				return err
			}
			if d.peek() != ':' {
				return d.syntax("after object key")
			}
			d.i++
		}
		if err := elem(key); err != nil {
			return err
		}
		switch d.peek() {
		case ',':
			d.i++
		case end:
			d.i++
			return nil
		default:
			return d.syntax(what)
		}
	}
}

// skip passes over one value, checking its syntax, without keeping it.
func (d *decoder) skip() error {
	switch d.peek() {
	case '{', '[':
		return d.each(func(string) error { return d.skip() })
	case '"':
		return d.skipString()
	}
	_, err := d.generic() // a scalar
	return err
}

// generic decodes the next value as encoding/json does into an any.
func (d *decoder) generic() (any, error) {
	switch c := d.peek(); {
	case c == '{':
		m := map[string]any{}
		err := d.each(func(key string) (err error) {
			m[key], err = d.generic()
			return err
		})
		return m, err
	case c == '[':
		a := []any{}
		err := d.each(func(string) error {
			x, err := d.generic()
			a = append(a, x)
			return err
		})
		return a, err
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
