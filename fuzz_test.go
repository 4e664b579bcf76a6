package ownidsessions

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"golang.org/x/net/http/httpguts"
)

// The fuzz targets run their seed corpora (testdata/fuzz/<target>) as plain
// tests in every `go test`, and so in `make test`, which explores nothing;
// `make fuzz` explores each, and what it finds is committed there.

// FuzzServeHTTP drives the whole request path (routing, token, contract
// checks, store, response) with arbitrary method, path, headers and body.
// Whatever comes in, the answer is a success or a complete problem with a
// 4xx status, never a panic or a 5xx.
func FuzzServeHTTP(f *testing.F) {
	h := newTestHandler(f)
	valid := tokenFor(f, "fuzz")
	// A session to aim item requests at.
	w := httptest.NewRecorder()
	h.ServeHTTP(w, newRequest("POST", "/f/accounts/sessions", valid, `{"payload":{}}`), nextMustNotRun)
	var s sessionJSON
	if err := json.Unmarshal(w.Body.Bytes(), &s); err != nil {
		f.Fatal(err)
	}
	f.Add("PUT", "/f/accounts/sessions/"+s.ID, "application/json", `"1"`, uint8(1), []byte(`{"payload":{"a":1}}`))
	f.Add("POST", "/f/accounts/sessions", "application/json", "", uint8(1), []byte(`{"payload":{},"timeout":5}`))
	f.Add("GET", "/accounts/sessions", "", "", uint8(2), []byte(nil))

	f.Fuzz(func(t *testing.T, method, path, contentType, ifMatch string, auth uint8, body []byte) {
		if !httpguts.ValidHeaderFieldName(method) || !httpguts.ValidHeaderFieldValue(contentType) || !httpguts.ValidHeaderFieldValue(ifMatch) {
			t.Skip() // the HTTP server refuses these before any handler runs
		}
		path = strings.ReplaceAll(path, "{id}", s.ID)
		r := &http.Request{
			Method:        method,
			URL:           &url.URL{Path: path},
			Header:        http.Header{},
			Body:          io.NopCloser(bytes.NewReader(body)),
			ContentLength: int64(len(body)),
		}
		if contentType != "" {
			r.Header.Set("Content-Type", contentType)
		}
		if ifMatch != "" {
			r.Header.Set("If-Match", ifMatch)
		}
		switch auth % 3 {
		case 1:
			r.Header.Set("Authorization", "Bearer "+valid)
		case 2:
			if httpguts.ValidHeaderFieldValue(string(body)) {
				r.Header.Set("Authorization", "Bearer "+string(body))
			}
		}
		r = r.WithContext(context.WithValue(context.Background(), caddy.ReplacerCtxKey, caddy.NewReplacer()))
		rec := httptest.NewRecorder()
		passed := false
		next := func(http.ResponseWriter, *http.Request) error { passed = true; return nil }
		if err := h.ServeHTTP(rec, r, handlerFunc(next)); err != nil {
			t.Fatalf("ServeHTTP returned %v", err)
		}
		if passed {
			if _, ok := h.contract.route(path); ok {
				t.Fatalf("a contract path %q went to the next handler", path)
			}
			return
		}
		if rec.Code >= 500 {
			t.Fatalf("%s %q answered %d: %s", method, path, rec.Code, rec.Body)
		}
		if cl := rec.Header().Get("Content-Length"); cl != "" && cl != strconv.Itoa(rec.Body.Len()) {
			t.Fatalf("Content-Length %s for %d bytes", cl, rec.Body.Len())
		}
		if rec.Code >= 400 {
			var p problemBody
			if rec.Header().Get("Content-Type") != "application/problem+json" || json.Unmarshal(rec.Body.Bytes(), &p) != nil || p.Status != rec.Code {
				t.Fatalf("%d without a complete problem: %q", rec.Code, rec.Body)
			}
		}
	})
}

type handlerFunc func(http.ResponseWriter, *http.Request) error

func (f handlerFunc) ServeHTTP(w http.ResponseWriter, r *http.Request) error { return f(w, r) }

// FuzzCaddyfile feeds arbitrary tokens to the directive's parser: it may
// refuse them, never panic.
func FuzzCaddyfile(f *testing.F) {
	f.Add("ownid_sessions {\n\tmode forward\n\tjwt {\n\t\talg HS256\n\t\tsecret x\n\t}\n}")
	f.Add("ownid_sessions {\n\tstore memory a {\n\t\tsweep_interval 1s\n\t}\n\tmax_body 1KiB\n}")
	f.Fuzz(func(t *testing.T, input string) {
		tokens, err := caddyfile.Tokenize([]byte(input), "Caddyfile")
		if err != nil || len(tokens) == 0 {
			return
		}
		var h Handler
		_ = h.UnmarshalCaddyfile(caddyfile.NewDispenser(tokens))
	})
}

// FuzzBearerToken feeds arbitrary Authorization headers to the verifier:
// the answer is an identity or a 401/403 problem, never a panic.
func FuzzBearerToken(f *testing.F) {
	v := testVerifier(f, nil)
	f.Add("Bearer " + tokenFor(f, "fuzz"))
	f.Add("Bearer " + sign(f, "ES256", claimsFor("fuzz")))
	f.Add("bearer a.b.c")
	f.Add("Bearer " + strings.Repeat(".", 100))
	f.Fuzz(func(t *testing.T, header string) {
		if !httpguts.ValidHeaderFieldValue(header) {
			t.Skip()
		}
		r := httptest.NewRequest("GET", "/accounts/sessions", nil)
		r.Header.Set("Authorization", header)
		id, p := verifyRequest(v, r)
		if (id == nil) == (p == nil) {
			t.Fatalf("identity %v and problem %v", id, p)
		}
		if p != nil && p.kind != kindInvalidToken && p.kind != kindMissingToken && p.kind != kindForbidden {
			t.Fatalf("problem of kind %s", problemKinds[p.kind].slug)
		}
	})
}
