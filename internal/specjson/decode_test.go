package specjson

import (
	"encoding/json"
	"errors"
	"math/rand"
	"net/netip"
	"reflect"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestUnmarshalLikeEncodingJSON decodes random specs and records with both
// decoders and requires the same values.
func TestUnmarshalLikeEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewSource(2))
	for i := 0; i < 300; i++ {
		for _, v := range []any{&specs.Spec{}, &record{}} {
			fill(r, reflect.ValueOf(v).Elem(), 0)
			data, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			a := reflect.New(reflect.TypeOf(v).Elem()).Interface()
			b := reflect.New(reflect.TypeOf(v).Elem()).Interface()
			if err := Unmarshal(data, a); err != nil {
				t.Fatalf("ours: %v\n%s", err, data)
			}
			if err := json.Unmarshal(data, b); err != nil {
				t.Fatalf("encoding/json: %v", err)
			}
			if !reflect.DeepEqual(normalize(a), normalize(b)) {
				t.Fatalf("decoded differently\ninput: %s\nours:   %+v\ntheirs: %+v", data, a, b)
			}
		}
	}
}

// normalize re-encodes v, so that raw messages compare by content (ours
// re-encodes them, with keys in another order).
func normalize(v any) any {
	b, _ := json.Marshal(v)
	var out any
	json.Unmarshal(b, &out)
	return out
}

func TestUnmarshalErrors(t *testing.T) {
	for in, field := range map[string]string{
		`{"process":{"args":"sh"}}`:                          "process.args",
		`{"linux":{"resources":{"memory":{"limit":"big"}}}}`: "linux.resources.memory.limit",
		`{"linux":{"uidMappings":[{"size":-1}]}}`:            "linux.uidMappings.size",
		`{"process":{"user":{"uid":4294967296}}}`:            "process.user.uid",
		`{"hostname":7}`:                                     "hostname",
		`{"annotations":{"a":1}}`:                            "annotations.a",
	} {
		var s specs.Spec
		err := Unmarshal([]byte(in), &s)
		var te *TypeError
		if !errors.As(err, &te) || te.Field != field {
			t.Errorf("%s: error %v, want a type error at %s", in, err, field)
		}
	}
	for _, in := range []string{``, `{`, `{"a":1} x`, `[1,]`} {
		var s specs.Spec
		if err := Unmarshal([]byte(in), &s); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
	var s specs.Spec
	if err := Unmarshal([]byte(`{"ociVersion":"1.0.0","HOSTNAME":"x","process":null}`), &s); err != nil || s.Hostname != "x" || s.Process != nil {
		t.Errorf("case-insensitive keys and null: %+v %v", s, err)
	}
}

// TestUnmarshalSyntaxLikeEncodingJSON: the same documents are accepted and
// decode to the same values, or are refused, by both decoders.
func TestUnmarshalSyntaxLikeEncodingJSON(t *testing.T) {
	for _, in := range []string{
		`0`, `-0`, `01`, `1.`, `-`, `1e`, `1e+5`, `1.5E-3`, `-12.25`, `.5`, `+1`,
		`"a\"b\\c\/d\b\f\n\r\t"`, `"\u00e9\u4e2d"`, `"\ud83d\ude00"`, `"\ud83d"`, `"\ud83dx"`, `"\x"`, `"\u12"`,
		"\"tab\tinside\"", "\"bad\xffbyte\"", `"unterminated`,
		`true`, `false`, `null`, `tru`, `nul`, `[1,2,]`, `[,]`, `{"a":1,}`, `{"a" 1}`, `{1:2}`, `[1 2]`,
		`{"a":[1,{"b":null}],"c":"d"}`, `  [ ]  `, `{}`, `[] []`,
	} {
		var ours, theirs any
		errOurs := Unmarshal([]byte(in), &ours)
		errTheirs := json.Unmarshal([]byte(in), &theirs)
		if (errOurs == nil) != (errTheirs == nil) {
			t.Errorf("%q: ours %v, encoding/json %v", in, errOurs, errTheirs)
			continue
		}
		if errOurs == nil && !reflect.DeepEqual(ours, theirs) {
			t.Errorf("%q: ours %#v, encoding/json %#v", in, ours, theirs)
		}
	}
}

func TestUnmarshalSkipsUnknownFields(t *testing.T) {
	var s specs.Spec
	in := `{"unknown":{"a":[1,"x\"y\u00e9",{"b":null}],"c":true},"hostname":"h","also":-1.5e3}`
	if err := Unmarshal([]byte(in), &s); err != nil || s.Hostname != "h" {
		t.Fatalf("%+v, %v", s, err)
	}
	for _, bad := range []string{`{"unknown":[1,}`, `{"unknown":{"a" 1}}`, `{"unknown":"\x"}`, `{"unknown":tru}`, `{"unknown":"open`} {
		if err := Unmarshal([]byte(bad), &s); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

func TestTextMarshalers(t *testing.T) {
	type rec struct {
		A netip.Addr   `json:"a"`
		P netip.Prefix `json:"p,omitzero"`
		Q netip.Prefix `json:"q,omitzero"`
	}
	in := rec{A: netip.MustParseAddr("10.0.0.1"), P: netip.MustParsePrefix("10.0.0.0/24")}
	b, err := Marshal(in)
	if err != nil || string(b) != `{"a":"10.0.0.1","p":"10.0.0.0/24"}` {
		t.Fatalf("%s %v", b, err)
	}
	var out rec
	if err := Unmarshal(b, &out); err != nil || out != in {
		t.Fatalf("%+v %v", out, err)
	}
	if err := Unmarshal([]byte(`{"a":"nope"}`), &out); err == nil {
		t.Fatal("a bad address accepted")
	}
}
