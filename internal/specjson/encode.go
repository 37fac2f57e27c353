package specjson

import (
	"encoding"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// RawMessage is a JSON document kept as it is (as encoding/json's).
type RawMessage []byte

// MarshalJSON returns m ("null" when empty).
func (m RawMessage) MarshalJSON() ([]byte, error) {
	if len(m) == 0 {
		return []byte("null"), nil
	}
	return m, nil
}

// UnmarshalJSON keeps a copy of data.
func (m *RawMessage) UnmarshalJSON(data []byte) error {
	*m = append((*m)[:0], data...)
	return nil
}

// marshaler and unmarshaler are encoding/json's interfaces (time.Time has
// them), declared here so that nsbox does without encoding/json: its
// reflection tables are a tenth of the binary, and so of its memory.
type (
	marshaler   interface{ MarshalJSON() ([]byte, error) }
	unmarshaler interface{ UnmarshalJSON([]byte) error }
)

// MarshalIndent is Marshal with each element on a line of its own, indented
// by indent after prefix, as encoding/json.MarshalIndent.
func MarshalIndent(v any, prefix, indent string) ([]byte, error) {
	b, err := Marshal(v)
	if err != nil {
		return nil, err
	}
	return Indent(b, prefix, indent), nil
}

// Indent lays out the compact JSON b (as Marshal writes it) with one
// element a line.
func Indent(b []byte, prefix, indent string) []byte {
	var out []byte
	depth := 0
	newline := func() {
		out = append(out, '\n')
		out = append(out, prefix...)
		for i := 0; i < depth; i++ {
			out = append(out, indent...)
		}
	}
	inString := false
	for i := 0; i < len(b); i++ {
		c := b[i]
		if inString {
			out = append(out, c)
			if c == '\\' && i+1 < len(b) {
				i++
				out = append(out, b[i])
			} else if c == '"' {
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
			out = append(out, c)
		case '{', '[':
			out = append(out, c)
			if i+1 < len(b) && (b[i+1] == '}' || b[i+1] == ']') {
				i++
				out = append(out, b[i])
				continue
			}
			depth++
			newline()
		case '}', ']':
			depth--
			newline()
			out = append(out, c)
		case ',':
			out = append(out, c)
			newline()
		case ':':
			out = append(out, ':', ' ')
		default:
			out = append(out, c)
		}
	}
	return out
}

// Marshal encodes v as JSON that encoding/json decodes to the same value.
//
// encoding/json builds an encoder for every type reachable from a value's
// type the first time it meets it; for an OCI spec that is hundreds of
// types (Windows, VM, seccomp, resources, ...) and costs more than the rest
// of a box's start. This walker visits only the values that are present, so
// its cost follows the size of the spec, not of its type. It supports what
// the spec and state types use: structs with json tags (name, omitempty),
// pointers, slices, arrays, maps with string keys, strings, booleans,
// integers, floats, json.RawMessage and types implementing json.Marshaler.
func Marshal(v any) ([]byte, error) {
	var b []byte
	return appendValue(b, reflect.ValueOf(v))
}

var (
	marshalerType     = reflect.TypeFor[marshaler]()
	textMarshalerType = reflect.TypeFor[encoding.TextMarshaler]()
	rawType           = reflect.TypeFor[RawMessage]()
)

func appendValue(b []byte, v reflect.Value) ([]byte, error) {
	if !v.IsValid() {
		return append(b, "null"...), nil
	}
	t := v.Type()
	if t == rawType {
		if v.Len() == 0 {
			return append(b, "null"...), nil
		}
		return append(b, v.Bytes()...), nil
	}
	if t.Kind() != reflect.Pointer && t.Kind() != reflect.Interface && t.Implements(marshalerType) {
		out, err := v.Interface().(marshaler).MarshalJSON()
		return append(b, out...), err
	}
	if t.Kind() != reflect.Pointer && t.Kind() != reflect.Interface && t.Implements(textMarshalerType) {
		out, err := v.Interface().(encoding.TextMarshaler).MarshalText()
		return appendString(b, string(out)), err
	}
	switch t.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return append(b, "null"...), nil
		}
		if t.Kind() == reflect.Pointer && t.Implements(marshalerType) {
			out, err := v.Interface().(marshaler).MarshalJSON()
			return append(b, out...), err
		}
		return appendValue(b, v.Elem())
	case reflect.Struct:
		return appendStruct(b, v)
	case reflect.Map:
		if v.IsNil() {
			return append(b, "null"...), nil
		}
		if t.Key().Kind() != reflect.String {
			return nil, fmt.Errorf("json: unsupported map key type %s", t.Key())
		}
		keys := v.MapKeys()
		sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, k.String())
			b = append(b, ':')
			var err error
			if b, err = appendValue(b, v.MapIndex(k)); err != nil {
				return nil, err
			}
		}
		return append(b, '}'), nil
	case reflect.Slice:
		if v.IsNil() {
			return append(b, "null"...), nil
		}
		if t.Elem().Kind() == reflect.Uint8 {
			return nil, fmt.Errorf("json: []byte is not supported")
		}
		fallthrough
	case reflect.Array:
		b = append(b, '[')
		for i := 0; i < v.Len(); i++ {
			if i > 0 {
				b = append(b, ',')
			}
			var err error
			if b, err = appendValue(b, v.Index(i)); err != nil {
				return nil, err
			}
		}
		return append(b, ']'), nil
	case reflect.String:
		return appendString(b, v.String()), nil
	case reflect.Bool:
		return strconv.AppendBool(b, v.Bool()), nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.AppendInt(b, v.Int(), 10), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return strconv.AppendUint(b, v.Uint(), 10), nil
	case reflect.Float32, reflect.Float64:
		f := v.Float()
		if math.IsInf(f, 0) || math.IsNaN(f) {
			return nil, fmt.Errorf("json: unsupported value %v", f)
		}
		return strconv.AppendFloat(b, f, 'g', -1, t.Bits()), nil
	}
	return nil, fmt.Errorf("json: unsupported type %s", t)
}

func appendStruct(b []byte, v reflect.Value) ([]byte, error) {
	t := v.Type()
	b = append(b, '{')
	first := true
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		fv := v.Field(i)
		if f.Anonymous && name == "" && fv.Kind() == reflect.Pointer && f.Type.Elem().Kind() == reflect.Struct {
			if fv.IsNil() {
				continue
			}
			fv = fv.Elem()
		}
		if f.Anonymous && name == "" && fv.Kind() == reflect.Struct {
			// An embedded struct's fields belong to the outer object.
			inner, err := appendStruct(nil, fv)
			if err != nil {
				return nil, err
			}
			if len(inner) > 2 {
				if !first {
					b = append(b, ',')
				}
				b = append(b, inner[1:len(inner)-1]...)
				first = false
			}
			continue
		}
		if name == "" {
			name = f.Name
		}
		if strings.Contains(opts, "omitempty") && isEmpty(fv) || strings.Contains(opts, "omitzero") && fv.IsZero() {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = appendString(b, name)
		b = append(b, ':')
		var err error
		if b, err = appendValue(b, fv); err != nil {
			return nil, err
		}
	}
	return append(b, '}'), nil
}

// isEmpty is encoding/json's notion of an empty value for omitempty.
func isEmpty(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Array, reflect.Map, reflect.Slice, reflect.String:
		return v.Len() == 0
	case reflect.Bool:
		return !v.Bool()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return v.Int() == 0
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return v.Uint() == 0
	case reflect.Float32, reflect.Float64:
		return v.Float() == 0
	case reflect.Interface, reflect.Pointer:
		return v.IsNil()
	}
	return false
}

const hex = "0123456789abcdef"

// appendString writes s as a JSON string, escaping as encoding/json does
// (including <, > and &, and invalid UTF-8 as U+FFFD).
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
