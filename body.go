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

// parseJSON parses a body with encoding/json's tokenizer, in one pass. It
// refuses a body that is empty, not UTF-8, not exactly one well-formed JSON
// value, nested deeper than maxJSONDepth, that repeats a key within one
// object (parsers disagree on which value counts), or holds a number beyond
// float64. Numbers stay json.Number, as the schema validator wants them.
func parseJSON(body []byte) (*jsonDoc, *problem) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, newProblem(kindInvalidRequest, "a JSON body is required")
	}
	// JSON text is UTF-8 (RFC 8259); encoding/json would quietly replace
	// invalid bytes, so they are refused here.
	if !utf8.Valid(body) {
		return nil, newProblem(kindMalformedJSON, "the body is not valid UTF-8")
	}
	malformed := newProblem(kindMalformedJSON, "the body is not well-formed JSON")

	type container struct {
		object  map[string]any // for an object
		array   []any          // for an array
		isArray bool
		key     string // the member whose value comes next
		wantKey bool
		start   int64 // where the value of key began (top level only)
	}
	var stack []container
	doc := &jsonDoc{}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	done := false

	// complete hands a finished value to its container, or makes it the
	// document's value.
	complete := func(v any, end int64) {
		if len(stack) == 0 {
			doc.value, done = v, true
			return
		}
		top := &stack[len(stack)-1]
		if top.isArray {
			top.array = append(top.array, v)
			return
		}
		top.object[top.key] = v
		top.wantKey = true
		if len(stack) == 1 {
			raw := bytes.TrimLeft(body[top.start:end], " \t\r\n:")
			doc.members = append(doc.members, jsonMember{top.key, raw})
		}
	}

	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil || done {
			return nil, malformed // bad syntax, or a second value
		}
		if n := len(stack); n > 0 && !stack[n-1].isArray && stack[n-1].wantKey {
			key, isKey := tok.(string)
			if !isKey { // the object ends
				obj := stack[n-1].object
				stack = stack[:n-1]
				complete(obj, dec.InputOffset())
				continue
			}
			top := &stack[n-1]
			if _, dup := top.object[key]; dup {
				return nil, newProblem(kindInvalidRequest, "the body repeats a key within one object")
			}
			top.key, top.wantKey, top.start = key, false, dec.InputOffset()
			continue
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{', '[':
				if len(stack) == maxJSONDepth {
					return nil, newProblem(kindInvalidRequest, "the body nests arrays and objects deeper than "+strconv.Itoa(maxJSONDepth)+" levels")
				}
				if t == '{' {
					stack = append(stack, container{object: map[string]any{}, wantKey: true})
				} else {
					stack = append(stack, container{isArray: true, array: []any{}})
				}
			case ']':
				arr := stack[len(stack)-1].array
				stack = stack[:len(stack)-1]
				complete(arr, dec.InputOffset())
			}
		case json.Number:
			if _, err := strconv.ParseFloat(string(t), 64); err != nil {
				return nil, newProblem(kindInvalidRequest, "the body holds a number out of range")
			}
			complete(t, dec.InputOffset())
		default: // string, bool, nil
			complete(t, dec.InputOffset())
		}
	}
	if !done || len(stack) > 0 {
		return nil, malformed // nothing, or cut short
	}
	return doc, nil
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
