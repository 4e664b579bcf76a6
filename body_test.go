package ownidsessions

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unicode/utf16"
	"unicode/utf8"
)

func TestReadBody(t *testing.T) {
	tests := []struct {
		body string
		cl   int64 // Content-Length sent; -1 for unknown (chunked)
		kind problemKind
		ok   bool
	}{
		{body: `{"a":1}`, cl: 7, ok: true},
		{body: `{"a":1}`, cl: -1, ok: true},
		{body: strings.Repeat(" ", 20) + "{}", cl: -1, ok: true},
		{body: `{"a":"` + strings.Repeat("x", 40) + `"}`, cl: -1, kind: kindBodyTooLarge},
		{body: `{}`, cl: 1000, kind: kindBodyTooLarge},
		{body: ``, cl: 0, kind: kindInvalidRequest},
		{body: `   `, cl: -1, kind: kindInvalidRequest},
		{body: `{"a":`, cl: -1, kind: kindMalformedJSON},
		{body: "{\"a\":\"\xff\"}", cl: -1, kind: kindMalformedJSON},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("PUT", "/", io.NopCloser(strings.NewReader(tt.body)))
		r.ContentLength = tt.cl
		body, p := readBody(r, 32)
		if p == nil {
			_, p = parseJSON(body)
		}
		if tt.ok {
			if p != nil || string(body) != tt.body {
				t.Errorf("%q: %q, %v", tt.body, body, p)
			}
			continue
		}
		if p == nil || p.kind != tt.kind {
			t.Errorf("%q: %v, want %s", tt.body, p, problemKinds[tt.kind].slug)
		}
	}
}

func TestParseJSON(t *testing.T) {
	nest := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	tests := []struct {
		body string
		kind problemKind
		ok   bool
	}{
		{body: `{"payload":{"a":[1,{"b":null}]},"timeout":5}`, ok: true},
		{body: `[{"a":1},{"a":1}]`, ok: true}, // the same key in two objects
		{body: `{"m":123456789012345678901234567890,"n":-1.5e300}`, ok: true},
		{body: `{"n":1e999999}`, kind: kindInvalidRequest},
		{body: nest(maxJSONDepth), ok: true},
		{body: nest(maxJSONDepth + 1), kind: kindInvalidRequest},
		{body: nest(10000), kind: kindInvalidRequest},
		{body: `{"payload":{},"payload":[]}`, kind: kindInvalidRequest},
		{body: `{"a":{"b":1,"b":2}}`, kind: kindInvalidRequest},
		{body: `{"a":1,"\u0061":2}`, kind: kindInvalidRequest}, // the same key, escaped
		{body: `{"a\"b":1,"a\u0022b":2}`, kind: kindInvalidRequest},
		{body: `{"a":[{"k":1},{"k":2}],"b":{"k":1}}`, ok: true},
		{body: `{"x":-0.5e-3,"y":[true,false,null]}`, ok: true},
		{body: `[1,}`, kind: kindMalformedJSON},
		{body: `{"a":1]`, kind: kindMalformedJSON},
		{body: `"unterminated`, kind: kindMalformedJSON},
		{body: `{"n":` + strings.Repeat("9", 400) + `}`, kind: kindInvalidRequest},
		{body: `{} {}`, kind: kindMalformedJSON},
		{body: `{}x`, kind: kindMalformedJSON},
		{body: `{"a":1`, kind: kindMalformedJSON},
		{body: `{"a"}`, kind: kindMalformedJSON},
		{body: "{\"a\":\"\xff\"}", kind: kindMalformedJSON},
		{body: `["\ud800"]`, kind: kindMalformedJSON},          // half a surrogate pair is not Unicode
		{body: `["\ud83d\ude00"]`, ok: true},                   // a whole one is
		{body: `{"é":1,"\u00e9":2}`, kind: kindInvalidRequest}, // the same key, escaped
		// The first fault met decides: a body that goes wrong before it
		// repeats a key is malformed (found by fuzzing), one that repeats a
		// key before it goes wrong repeats a key.
		{body: `{""0""0`, kind: kindMalformedJSON},
		{body: `{"a" 1,"a":2}`, kind: kindMalformedJSON},
		{body: `{"a":1,"a":`, kind: kindInvalidRequest},
		{body: "{}\n\t ", ok: true},
		{body: ``, kind: kindInvalidRequest},
		{body: " \t\r\n", kind: kindInvalidRequest},
		{body: "\f", kind: kindMalformedJSON}, // not JSON white space
	}
	for _, tt := range tests {
		_, p := parseJSON([]byte(tt.body))
		if tt.ok {
			if p != nil {
				t.Errorf("%.40q: %v", tt.body, p)
			}
			continue
		}
		if p == nil || p.kind != tt.kind {
			t.Errorf("%.40q: %v, want %s", tt.body, p, problemKinds[tt.kind].slug)
		}
	}
}

// TestParseJSONValue: the one-pass parse gives the value encoding/json
// would (numbers as json.Number) and the exact text of each top-level member.
func TestParseJSONValue(t *testing.T) {
	body := `{ "payload" : {"a": [1, 2.5, "x", true, null, {}]},
	"timeout":  30 ,"empty":[], "s":"}\"{" }`
	doc, p := parseJSON([]byte(body))
	if p != nil {
		t.Fatal(p)
	}
	dec := json.NewDecoder(strings.NewReader(body))
	dec.UseNumber()
	var want any
	dec.Decode(&want)
	if !reflect.DeepEqual(doc.value, want) {
		t.Errorf("value %#v, want %#v", doc.value, want)
	}
	for name, raw := range map[string]string{
		"payload": `{"a": [1, 2.5, "x", true, null, {}]}`,
		"timeout": `30`,
		"empty":   `[]`,
		"s":       `"}\"{"`,
		"missing": ``,
	} {
		if got := string(doc.member(name)); got != raw {
			t.Errorf("member %s = %q, want %q", name, got, raw)
		}
	}
	for _, body := range []string{`[1,{"a":2}]`, `"text"`, `12`, `null`} {
		doc, p := parseJSON([]byte(body))
		var want any
		dec := json.NewDecoder(strings.NewReader(body))
		dec.UseNumber()
		dec.Decode(&want)
		if p != nil || !reflect.DeepEqual(doc.value, want) || len(doc.members) != 0 {
			t.Errorf("%s: %#v %v", body, doc, p)
		}
	}
}

// FuzzParseJSON holds the one-pass parse to encoding/json: what it accepts,
// encoding/json accepts too and decodes to the same value, with the same
// text for each top-level member; what encoding/json accepts, it refuses as
// malformed only for text that is not Unicode (which encoding/json replaces
// with U+FFFD), and refuses for a repeated key only when encoding/json's
// tokenizer meets one.
func FuzzParseJSON(f *testing.F) {
	for _, s := range []string{`{"payload":{"a":[1,{"b":null}]},"timeout":5}`, `[]`, `{"a":1,"a":2}`, `{"a":"\u0041"}`, `1e400`, `{"x":[[[]]]}`,
		`["\ud800"]`, `{"a":1,"a":`, `{"é":1,"\u00e9":2}`, " {} \f", strings.Repeat("[", maxJSONDepth+1)} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		sent := bytes.Clone(body)
		doc, p := parseJSON(body)
		if !bytes.Equal(body, sent) {
			t.Fatalf("parsing %q changed it to %q", sent, body)
		}
		valid := json.Valid(body)
		if dup := repeatsKey(body); p == nil && dup {
			t.Fatalf("accepted %q, which repeats a key", body)
		} else if p != nil && strings.Contains(p.detail, "repeats a key") && !dup {
			t.Fatalf("refused %q for a repeated key it does not have", body)
		}
		if p == nil {
			if !valid {
				t.Fatalf("accepted invalid JSON %q", body)
			}
			want := decodeUseNumber(t, body)
			if !reflect.DeepEqual(doc.value, want) {
				t.Fatalf("%q parsed to %#v, encoding/json to %#v", body, doc.value, want)
			}
			object, _ := want.(map[string]any)
			if len(doc.members) != len(object) {
				t.Fatalf("%q: %d members, encoding/json %d", body, len(doc.members), len(object))
			}
			for _, m := range doc.members {
				if !reflect.DeepEqual(decodeUseNumber(t, m.raw), object[m.name]) || !json.Valid(compact(m.raw)) {
					t.Fatalf("member %q has text %q", m.name, m.raw)
				}
			}
			return
		}
		switch {
		case p.detail == "a JSON body is required":
			if len(bytes.Trim(body, " \t\r\n")) != 0 {
				t.Fatalf("refused %q as empty", body)
			}
		case p.kind == kindMalformedJSON:
			if valid && utf8.Valid(body) && !escapesHalfSurrogate(body) {
				t.Fatalf("refused valid JSON %q as malformed", body)
			}
		}
	})
}

// decodeUseNumber is the reference decode: encoding/json, numbers as
// json.Number.
func decodeUseNumber(t *testing.T, text []byte) any {
	dec := json.NewDecoder(bytes.NewReader(text))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("encoding/json refuses %q: %v", text, err)
	}
	return v
}

// escapesHalfSurrogate says whether well-formed JSON text escapes half of
// a UTF-16 surrogate pair on its own, as in "\ud800", which encoding/json
// decodes to U+FFFD.
func escapesHalfSurrogate(text []byte) bool {
	s := string(text)
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			continue
		}
		i++ // the escaped character; in well-formed text a \u has four hex digits
		if s[i] != 'u' {
			continue
		}
		r1, _ := strconv.ParseUint(s[i+1:i+5], 16, 16)
		i += 4
		if !utf16.IsSurrogate(rune(r1)) {
			continue
		}
		if !strings.HasPrefix(s[i+1:], `\u`) || len(s) < i+7 {
			return true
		}
		r2, _ := strconv.ParseUint(s[i+3:i+7], 16, 16)
		if utf16.DecodeRune(rune(r1), rune(r2)) == utf8.RuneError {
			return true
		}
		i += 6
	}
	return false
}

// repeatsKey is the reference for repeated keys: encoding/json's tokenizer,
// which unescapes every key, and a set per open object.
func repeatsKey(body []byte) bool {
	dec := json.NewDecoder(strings.NewReader(string(body)))
	type level struct {
		object  bool
		wantKey bool
		keys    map[string]bool
	}
	var stack []level
	for {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		if key, ok := tok.(string); ok && len(stack) > 0 && stack[len(stack)-1].object && stack[len(stack)-1].wantKey {
			top := &stack[len(stack)-1]
			if top.keys[key] {
				return true
			}
			top.keys[key] = true
			top.wantKey = false
			continue
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, level{object: true, wantKey: true, keys: map[string]bool{}})
			continue
		case json.Delim('['):
			stack = append(stack, level{})
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
		if n := len(stack); n > 0 && stack[n-1].object {
			stack[n-1].wantKey = true
		}
	}
}

// BenchmarkParseJSONShapes parses PUT bodies in each shape a client could
// use to make the parse expensive, next to a flat string as the reference,
// at two sizes: the parse is one linear pass, so each shape costs about
// four times as much at 64 KiB as at 16 KiB.
func BenchmarkParseJSONShapes(b *testing.B) {
	for _, size := range []int{16 << 10, 64 << 10} {
		for _, shape := range hostileBodyShapes(size) {
			if _, p := parseJSON(shape.body); p != nil {
				b.Fatalf("%s: %v", shape.name, p)
			}
			b.Run(shape.name+"/"+strconv.Itoa(size>>10)+"KiB", func(b *testing.B) {
				b.SetBytes(int64(len(shape.body)))
				b.ReportAllocs()
				for b.Loop() {
					parseJSON(shape.body)
				}
			})
		}
	}
}

// hostileBodyShapes returns a body of about size bytes in each shape that
// stresses a JSON parser, each the payload of a PUT body; the first is a
// flat string, the cheapest shape to parse.
func hostileBodyShapes(size int) []struct {
	name string
	body []byte
} {
	// fill repeats items, separated by commas, until the payload is about
	// size bytes.
	fill := func(open, close string, item func(i int) string) []byte {
		var s strings.Builder
		s.WriteString(`{"payload":` + open)
		for i := 0; s.Len() < size-len(close)-16; i++ {
			if i > 0 {
				s.WriteByte(',')
			}
			s.WriteString(item(i))
		}
		s.WriteString(close + `}`)
		return []byte(s.String())
	}
	same := func(item string) func(int) string { return func(int) string { return item } }
	escapes := `\u00e9\n\"\\\t\/\ud83d\ude00`
	// A sub-tree 62 levels deep: with the top-level object and the
	// payload array around it, the body nests exactly maxJSONDepth deep.
	deep := strings.Repeat(`{"a":[`, (maxJSONDepth-2)/2) + strings.Repeat(`]}`, (maxJSONDepth-2)/2)
	return []struct {
		name string
		body []byte
	}{
		{"flat-string", []byte(`{"payload":"` + strings.Repeat("x", size-14) + `"}`)},
		{"many-keys", fill(`{`, `}`, func(i int) string { return `"` + strconv.FormatInt(int64(i), 36) + `":0` })},
		{"many-escaped-keys", fill(`{`, `}`, func(i int) string { return `"\u00e9` + strconv.FormatInt(int64(i), 36) + `":0` })},
		{"many-small-objects", fill(`[`, `]`, same(`{"a":1}`))},
		{"deep-nesting", fill(`[`, `]`, same(deep))},
		{"long-strings", fill(`[`, `]`, same(`"`+strings.Repeat("y", 1024)+`"`))},
		{"many-numbers", fill(`[`, `]`, same(`-12345.678e-9`))},
		{"many-escapes", []byte(`{"payload":"` + strings.Repeat(escapes, (size-14)/len(escapes)) + `"}`)},
	}
}
