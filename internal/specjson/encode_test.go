package specjson

import (
	"encoding/json"
	"math/rand"
	"reflect"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// record has the shapes of the state store's records: an embedded struct,
// a time and a raw message.
type record struct {
	specs.State
	Created time.Time  `json:"created"`
	Owner   int        `json:"owner"`
	Flag    bool       `json:"flag,omitempty"`
	Config  RawMessage `json:"config,omitempty"`
}

// fill sets v (recursively) to random values; depth bounds recursion.
func fill(r *rand.Rand, v reflect.Value, depth int) {
	switch v.Kind() {
	case reflect.Pointer:
		if depth > 8 || r.Intn(4) == 0 {
			return
		}
		v.Set(reflect.New(v.Type().Elem()))
		fill(r, v.Elem(), depth+1)
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			v.Set(reflect.ValueOf(time.Unix(r.Int63n(1<<32), r.Int63n(1e9)).UTC()))
			return
		}
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				fill(r, v.Field(i), depth+1)
			}
		}
	case reflect.Slice:
		if depth > 8 || r.Intn(3) == 0 {
			return
		}
		if v.Type() == reflect.TypeFor[RawMessage]() {
			v.SetBytes([]byte(`{"a":[1,2,"x"]}`))
			return
		}
		n := r.Intn(3) + 1
		v.Set(reflect.MakeSlice(v.Type(), n, n))
		for i := 0; i < n; i++ {
			fill(r, v.Index(i), depth+1)
		}
	case reflect.Array:
		for i := 0; i < v.Len(); i++ {
			fill(r, v.Index(i), depth+1)
		}
	case reflect.Map:
		if depth > 8 || r.Intn(3) == 0 {
			return
		}
		v.Set(reflect.MakeMap(v.Type()))
		for i := 0; i < r.Intn(3)+1; i++ {
			k := reflect.New(v.Type().Key()).Elem()
			fill(r, k, depth+1)
			e := reflect.New(v.Type().Elem()).Elem()
			fill(r, e, depth+1)
			v.SetMapIndex(k, e)
		}
	case reflect.String:
		v.SetString(randString(r))
	case reflect.Bool:
		v.SetBool(r.Intn(2) == 0)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(int64(r.Uint64()) >> (64 - v.Type().Bits()))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		v.SetUint(r.Uint64() >> (64 - v.Type().Bits()))
	case reflect.Float32, reflect.Float64:
		v.SetFloat(r.NormFloat64() * 1e6)
	}
}

var tricky = []string{"", "plain", `q"uote\back`, "nl\n\r\t", "<tag>&amp;", "\x00\x01\x1f", "ünïcødé ✓", "\u2028\u2029", "bad\xffutf8", "/proc/self/fd/3"}

func randString(r *rand.Rand) string {
	if r.Intn(2) == 0 {
		return tricky[r.Intn(len(tricky))]
	}
	b := make([]byte, r.Intn(12))
	for i := range b {
		b[i] = byte(r.Intn(256))
	}
	return string(b)
}

// TestMarshalRoundTrip checks that encoding/json decodes marshal's output of
// random specs and states to exactly what encoding/json's own output decodes
// to.
func TestMarshalRoundTrip(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	for i := 0; i < 300; i++ {
		for _, v := range []any{&specs.Spec{}, &record{}} {
			fill(r, reflect.ValueOf(v).Elem(), 0)
			ours, err := Marshal(v)
			if err != nil {
				t.Fatalf("marshal: %v", err)
			}
			theirs, err := json.Marshal(v)
			if err != nil {
				t.Fatalf("json.Marshal: %v", err)
			}
			a := reflect.New(reflect.TypeOf(v).Elem()).Interface()
			b := reflect.New(reflect.TypeOf(v).Elem()).Interface()
			if err := json.Unmarshal(ours, a); err != nil {
				t.Fatalf("decode ours: %v\n%s", err, ours)
			}
			if err := json.Unmarshal(theirs, b); err != nil {
				t.Fatalf("decode theirs: %v", err)
			}
			if !reflect.DeepEqual(a, b) {
				t.Fatalf("round trip differs\nours:   %s\ntheirs: %s", ours, theirs)
			}
		}
	}
}

func TestMarshalStringsLikeEncodingJSON(t *testing.T) {
	for _, s := range tricky {
		want, _ := json.Marshal(s)
		if got := appendString(nil, s); string(got) != string(want) {
			t.Errorf("%q: got %s, want %s", s, got, want)
		}
	}
}

// TestMarshalIndentLikeEncodingJSON: the indented layout is encoding/json's.
func TestMarshalIndentLikeEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewSource(3))
	for i := 0; i < 100; i++ {
		v := &specs.Spec{}
		fill(r, reflect.ValueOf(v).Elem(), 0)
		ours, err := MarshalIndent(v, "", "\t")
		if err != nil {
			t.Fatal(err)
		}
		theirs, _ := json.MarshalIndent(v, "", "\t")
		if string(ours) != string(theirs) {
			t.Fatalf("indented differently\nours:   %s\ntheirs: %s", ours, theirs)
		}
	}
	ours, _ := MarshalIndent(map[string]any{"a": []int{}, "b": map[string]int{}, "c": "x\"{,}"}, ">", "  ")
	theirs, _ := json.MarshalIndent(map[string]any{"a": []int{}, "b": map[string]int{}, "c": "x\"{,}"}, ">", "  ")
	if string(ours) != string(theirs) {
		t.Fatalf("ours:\n%s\ntheirs:\n%s", ours, theirs)
	}
}
