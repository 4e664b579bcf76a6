package ownidsessions

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"unicode/utf8"
)

// maxJSONDepth bounds the nesting of a JSON body: arrays and objects inside
// one another. Deeper bodies are refused before any schema work.
const maxJSONDepth = 64

// requestBody is a request body read once: its bytes, and for JSON its
// parse.
type requestBody struct {
	raw []byte
	doc *jsonDoc // nil for a body that is not JSON
}

// jsonDoc is a JSON body parsed in one pass: the value for schema
// validation, and the text of each member of a top-level object, so that a
// member can be stored as sent without decoding it again.
type jsonDoc struct {
	value   any
	members []jsonMember
}

type jsonMember struct {
	name string
	raw  []byte
}

// member returns the text of a top-level member, or nil.
func (d *jsonDoc) member(name string) []byte {
	for _, m := range d.members {
		if m.name == name {
			return m.raw
		}
	}
	return nil
}

// readBody reads the whole request body, up to limit bytes (413 beyond).
// The body is read only for operations that declare one.
func readBody(r *http.Request, limit int64) ([]byte, *problem) {
	tooLarge := newProblem(kindBodyTooLarge, "the body is larger than "+strconv.FormatInt(limit, 10)+" bytes")
	if r.ContentLength > limit {
		return nil, tooLarge
	}
	var body []byte
	var err error
	if r.ContentLength > 0 {
		// The length is known: one allocation of exactly that size.
		body = make([]byte, r.ContentLength)
		_, err = io.ReadFull(r.Body, body)
	} else {
		body, err = io.ReadAll(io.LimitReader(r.Body, limit+1))
	}
	if err != nil {
		var netErr net.Error
		if errors.As(err, &netErr) && netErr.Timeout() {
			return nil, newProblem(kindBodyTimeout, "the body did not arrive within the server's read timeout")
		}
		return nil, newProblem(kindInvalidRequest, "the body could not be read in full")
	}
	if int64(len(body)) > limit {
		return nil, tooLarge
	}
	return body, nil
}

// parseJSON parses a body once. It refuses a body that is empty, not UTF-8,
// not exactly one well-formed JSON value, nested deeper than maxJSONDepth,
// that repeats a key within one object (parsers disagree on which value
// counts), or holds a number beyond float64. The value is encoding/json's,
// numbers as json.Number as the schema validator wants them; a short scan
// of the structure before it finds the depth, repeated keys and the text of
// each top-level member without allocating per token.
func parseJSON(body []byte) (*jsonDoc, *problem) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, newProblem(kindInvalidRequest, "a JSON body is required")
	}
	// JSON text is UTF-8 (RFC 8259); encoding/json would quietly replace
	// invalid bytes, so they are refused here.
	if !utf8.Valid(body) {
		return nil, newProblem(kindMalformedJSON, "the body is not valid UTF-8")
	}
	doc := &jsonDoc{}
	if p := scanStructure(body, doc); p != nil {
		return nil, p
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&doc.value); err != nil {
		return nil, errMalformed()
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errMalformed() // more than one value
	}
	return doc, nil
}

func errMalformed() *problem {
	return newProblem(kindMalformedJSON, "the body is not well-formed JSON")
}

// scanStructure walks the body's structure: strings, containers and the
// scalars between them. It checks nesting, repeated keys and number range,
// and records the text of each member of a top-level object. Syntax is left
// to the decoder that runs after it; what the scan cannot follow is
// malformed.
func scanStructure(b []byte, doc *jsonDoc) *problem {
	type frame struct {
		object  bool
		wantKey bool
		keys    [][]byte // the object's keys so far, unescaped
	}
	stack := make([]frame, 0, 8)
	var memberName string
	memberStart := 0

	// done is called when a value ends at end: an object that holds it
	// wants a key next, and a top-level member is complete.
	done := func(end int) {
		n := len(stack)
		if n == 0 || !stack[n-1].object {
			return
		}
		stack[n-1].wantKey = true
		if n == 1 {
			raw := bytes.TrimLeft(b[memberStart:end], " \t\r\n:")
			doc.members = append(doc.members, jsonMember{memberName, raw})
		}
	}

	for i := 0; i < len(b); {
		switch c := b[i]; {
		case c == '"':
			end, escaped := scanString(b, i)
			if end < 0 {
				return errMalformed()
			}
			n := len(stack)
			if n == 0 || !stack[n-1].object || !stack[n-1].wantKey {
				done(end + 1)
				i = end + 1
				continue
			}
			key := b[i+1 : end]
			if escaped {
				var s string
				if json.Unmarshal(b[i:end+1], &s) != nil {
					return errMalformed()
				}
				key = []byte(s)
			}
			top := &stack[n-1]
			for _, k := range top.keys {
				if bytes.Equal(k, key) {
					return newProblem(kindInvalidRequest, "the body repeats a key within one object")
				}
			}
			top.keys = append(top.keys, key)
			top.wantKey = false
			if n == 1 {
				memberName, memberStart = string(key), end+1
			}
			i = end + 1
		case c == '{' || c == '[':
			if len(stack) == maxJSONDepth {
				return newProblem(kindInvalidRequest, "the body nests arrays and objects deeper than "+strconv.Itoa(maxJSONDepth)+" levels")
			}
			stack = append(stack, frame{object: c == '{', wantKey: c == '{'})
			i++
		case c == '}' || c == ']':
			if len(stack) == 0 || stack[len(stack)-1].object != (c == '}') {
				return errMalformed()
			}
			stack = stack[:len(stack)-1]
			done(i + 1)
			i++
		case c == ',' || c == ':' || c == ' ' || c == '\t' || c == '\r' || c == '\n':
			i++
		default: // a number or true, false, null
			end := i
			for end < len(b) && !structural(b[end]) {
				end++
			}
			if c == '-' || '0' <= c && c <= '9' {
				if _, err := strconv.ParseFloat(string(b[i:end]), 64); err != nil {
					var numErr *strconv.NumError
					if errors.As(err, &numErr) && numErr.Err == strconv.ErrRange {
						return newProblem(kindInvalidRequest, "the body holds a number out of range")
					}
					return errMalformed()
				}
			}
			done(end)
			i = end
		}
	}
	if len(stack) != 0 {
		return errMalformed()
	}
	return nil
}

// structural says whether c ends a number or literal.
func structural(c byte) bool {
	switch c {
	case ',', ':', ']', '}', '[', '{', '"', ' ', '\t', '\r', '\n':
		return true
	}
	return false
}

// scanString finds the closing quote of the string that opens at b[start],
// and whether the string holds escapes; -1 when it does not close.
func scanString(b []byte, start int) (end int, escaped bool) {
	for i := start + 1; i < len(b); i++ {
		switch b[i] {
		case '\\':
			escaped = true
			i++
		case '"':
			return i, escaped
		}
	}
	return -1, escaped
}

// compact returns a JSON value without insignificant white space; nil stays
// nil (no value sent). The value has been parsed already.
func compact(v []byte) json.RawMessage {
	if v == nil {
		return nil
	}
	var b bytes.Buffer
	if err := json.Compact(&b, v); err != nil {
		return v
	}
	return b.Bytes()
}
