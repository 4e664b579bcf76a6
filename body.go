package ownidsessions

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/go-json-experiment/json/jsontext"
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
	inline  [4]jsonMember // members' first array: a body of the contract has few
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
	tooLarge := func() *problem { // built only when it is the answer
		return newProblem(kindBodyTooLarge, "the body is larger than "+strconv.FormatInt(limit, 10)+" bytes")
	}
	if r.ContentLength > limit {
		return nil, tooLarge()
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
		return nil, tooLarge()
	}
	return body, nil
}

// parseJSON parses a body in one pass of jsontext's decoder, which checks
// the grammar and that strings are UTF-8 (raw bytes and \u escapes alike).
// It refuses a body that is empty, not exactly one well-formed JSON value,
// nested deeper than maxJSONDepth, that repeats a key within one object
// (parsers disagree on which value counts), or holds a number beyond
// float64. The body is read in order and refused for the first fault met,
// so a body whose text goes wrong before it repeats a key is malformed.
//
// The value is built from the same tokens, as encoding/json with UseNumber
// would decode it: map[string]any, []any, string, json.Number, bool, nil,
// as the schema validator wants them. The text of each top-level member is
// a slice of the body.
func parseJSON(body []byte) (*jsonDoc, *problem) {
	// A bytes.Buffer is decoded in place, and never written to: offsets are
	// offsets into body. Repeated names are found in the maps the value is
	// built of: the decoder's own check would keep a second set of every
	// object's names, which costs as much as the rest of the parse of a
	// body of many keys.
	jp := jsonParsers.Get().(*jsonParser)
	defer jp.release()
	jp.in = *bytes.NewBuffer(body)
	dec := &jp.dec
	dec.Reset(&jp.in, decoderOptions...)
	if dec.PeekKind() == jsontext.KindInvalid {
		if _, err := dec.ReadToken(); err == io.EOF {
			return nil, newProblem(kindInvalidRequest, "a JSON body is required")
		}
		return nil, errMalformed()
	}
	r := &jp.reader
	r.dec, r.body, r.text, r.doc = dec, body, string(body), &jsonDoc{}
	r.doc.members = r.doc.inline[:0]
	var p *problem
	if r.doc.value, p = r.value(); p != nil {
		return nil, p
	}
	if _, err := dec.ReadToken(); err != io.EOF {
		return nil, errMalformed() // more than one value, or trailing bytes
	}
	return r.doc, nil
}

// decoderOptions are parseJSON's, made once.
var decoderOptions = []jsontext.Options{jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(false)}

// jsonParser is a decoder, the buffer it reads and the reader of its
// tokens, kept between bodies (jsonParsers): a new decoder costs an
// allocation for itself and more for the stacks it grows in every body.
// Between bodies it holds nothing of the last one.
type jsonParser struct {
	dec    jsontext.Decoder
	in     bytes.Buffer
	reader jsonReader
}

var jsonParsers = sync.Pool{New: func() any { return new(jsonParser) }}

// nothing is what a parser reads between bodies.
var nothing = strings.NewReader("")

func (jp *jsonParser) release() {
	jp.dec.Reset(nothing) // the decoder never reads it
	jp.in = bytes.Buffer{}
	scratch := jp.reader.unquoted[:0]
	if cap(scratch) > 4<<10 {
		scratch = nil // one large string should not stay for good
	}
	jp.reader = jsonReader{unquoted: scratch}
	jsonParsers.Put(jp)
}

func errMalformed() *problem {
	return newProblem(kindMalformedJSON, "the body is not well-formed JSON")
}

// jsonReader builds a jsonDoc from the decoder's tokens.
type jsonReader struct {
	dec  *jsontext.Decoder
	body []byte
	// text is the body as a string: strings without escapes, names and
	// numbers are slices of it rather than a copy each.
	text     string
	unquoted []byte // scratch space to unescape a string
	doc      *jsonDoc
}

// value reads the next value whole and returns it.
func (r *jsonReader) value() (any, *problem) {
	kind := r.dec.PeekKind()
	if kind == '{' || kind == '[' {
		if _, err := r.dec.ReadToken(); err != nil {
			return nil, errMalformed()
		}
		if r.dec.StackDepth() > maxJSONDepth {
			return nil, newProblem(kindInvalidRequest, "the body nests arrays and objects deeper than "+strconv.Itoa(maxJSONDepth)+" levels")
		}
		if kind == '{' {
			return r.object()
		}
		return r.array()
	}
	raw, err := r.dec.ReadValue()
	if err != nil {
		return nil, errMalformed() // also where a '}' or ']' stands for a value
	}
	switch kind {
	case '"':
		return r.string(raw), nil
	case '0':
		n := r.slice(raw)
		// The decoder has checked the grammar; only the range is left.
		if _, err := strconv.ParseFloat(n, 64); err != nil {
			return nil, newProblem(kindInvalidRequest, "the body holds a number out of range")
		}
		return json.Number(n), nil
	case 't':
		return true, nil
	case 'f':
		return false, nil
	}
	return nil, nil // null
}

// object reads the members of an object whose '{' has been read, up to its
// '}'. The text of each member of the top-level object is kept.
func (r *jsonReader) object() (any, *problem) {
	top := r.dec.StackDepth() == 1
	obj := make(map[string]any)
	for r.dec.PeekKind() != '}' {
		raw, err := r.dec.ReadValue()
		if err != nil {
			return nil, errMalformed()
		}
		name := r.string(raw)
		if _, repeated := obj[name]; repeated {
			return nil, newProblem(kindInvalidRequest, "the body repeats a key within one object")
		}
		nameEnd := r.dec.InputOffset()
		v, p := r.value()
		if p != nil {
			return nil, p
		}
		obj[name] = v
		if top {
			raw := bytes.TrimLeft(r.body[nameEnd:r.dec.InputOffset()], " \t\r\n:")
			r.doc.members = append(r.doc.members, jsonMember{name, raw})
		}
	}
	if _, err := r.dec.ReadToken(); err != nil { // the '}' just peeked
		return nil, errMalformed()
	}
	return obj, nil
}

// array reads the elements of an array whose '[' has been read, up to its
// ']'.
func (r *jsonReader) array() (any, *problem) {
	arr := make([]any, 0)
	for r.dec.PeekKind() != ']' {
		v, p := r.value()
		if p != nil {
			return nil, p
		}
		arr = append(arr, v)
	}
	if _, err := r.dec.ReadToken(); err != nil { // the ']' just peeked
		return nil, errMalformed()
	}
	return arr, nil
}

// slice returns the text of the value just read, raw, as a slice of r.text.
func (r *jsonReader) slice(raw []byte) string {
	end := int(r.dec.InputOffset())
	return r.text[end-len(raw) : end]
}

// string returns the value of the JSON string just read, raw: a slice of
// r.text when it holds no escapes.
func (r *jsonReader) string(raw []byte) string {
	if bytes.IndexByte(raw, '\\') < 0 {
		s := r.slice(raw)
		return s[1 : len(s)-1]
	}
	// The decoder has checked the escapes.
	r.unquoted, _ = jsontext.AppendUnquote(r.unquoted[:0], raw)
	return string(r.unquoted)
}

// compact returns a JSON value without insignificant white space; nil stays
// nil (no value sent). The value has been parsed already. The result may be
// v itself: stores copy what they keep.
func compact(v []byte) json.RawMessage {
	if v == nil {
		return nil
	}
	if bytes.IndexAny(v, " \t\r\n") < 0 {
		return v[:len(v):len(v)] // no white space at all; capped: an append copies
	}
	var b bytes.Buffer
	if err := json.Compact(&b, v); err != nil {
		return v
	}
	return b.Bytes()
}
