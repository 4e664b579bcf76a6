package ownidsessions

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/ownid-sessions/caddy-ownid-sessions/internal/jwtauth"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/ownid-sessions/caddy-ownid-sessions/store"
)

// sessionJSON is a Session as the contract shows it, for reading answers.
type sessionJSON struct {
	ID         string          `json:"id"`
	Created    string          `json:"created"`
	Timeout    int64           `json:"timeout"`
	LastActive string          `json:"lastActive"`
	Payload    json.RawMessage `json:"payload"`
}

// TestAppendSession: the hand-appended JSON is what encoding/json makes of
// the same session.
func TestAppendSession(t *testing.T) {
	at := time.Date(2026, 11, 25, 10, 0, 0, 123456789, time.FixedZone("X", 3600))
	for _, s := range []store.Session{
		{ID: store.NewID(), Created: at, LastActive: at.Add(time.Second), Timeout: 90 * time.Second, Payload: json.RawMessage(`{"a":["x\"y",1.5,null]}`)},
		{ID: "a", Created: at, LastActive: at, Timeout: time.Hour},
	} {
		got := appendSession(nil, &s)
		payload := s.Payload
		if payload == nil {
			payload = json.RawMessage(`{}`)
		}
		want, _ := json.Marshal(sessionJSON{s.ID, s.Created.UTC().Format(timeLayout), int64(s.Timeout / time.Second), s.LastActive.UTC().Format(timeLayout), payload})
		if string(got) != string(want) {
			t.Errorf("appendSession:\n got %s\nwant %s", got, want)
		}
	}
}

// TestAppendTime: the digit-by-digit format is AppendFormat's, for times in
// any zone, at the edges of the years it formats itself and beyond them.
func TestAppendTime(t *testing.T) {
	times := []time.Time{
		time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(-1, 12, 31, 23, 59, 59, 0, time.UTC),
		time.Date(2026, 11, 27, 0, 30, 0, 999999, time.FixedZone("+1", 3600)), // the day before in UTC
		time.Date(2024, 2, 29, 12, 0, 0, 1e6, time.FixedZone("-9:30", -34200)),
		{}, time.Unix(0, 0),
	}
	rng := rand.New(rand.NewPCG(17, 27)) // seeded: the same times every run
	for range 10000 {
		times = append(times, time.Unix(rng.Int64N(400*365*86400)-100*365*86400, rng.Int64N(1e9)).In(time.FixedZone("z", int(rng.Int64N(50400))-25200)))
	}
	for _, at := range times {
		if got, want := string(appendTime([]byte("x"), at)), "x"+at.UTC().Format(timeLayout); got != want {
			t.Fatalf("appendTime(%v) = %s, want %s", at, got, want)
		}
	}
}

func TestParseRoute(t *testing.T) {
	tests := []struct {
		path string
		ok   bool
		want route
	}{
		{"/accounts/sessions", true, route{app: "", template: collectionPath, path: "/accounts/sessions"}},
		{"/app1/accounts/sessions", true, route{app: "/app1", template: collectionPath, path: "/accounts/sessions"}},
		{"/a/b/accounts/sessions/xyz", true, route{app: "/a/b", template: itemPath, path: "/accounts/sessions/xyz", sessionID: "xyz"}},
		{"/accounts/sessions/bad!id", true, route{app: "", template: itemPath, path: "/accounts/sessions/bad!id", sessionID: "bad!id"}},
		{"/accounts/sessions/", false, route{}},
		{"/accounts/sessions/a/b", false, route{}},
		{"/accounts/sessionsx", false, route{}},
		{"/accounts", false, route{}},
		{"/", false, route{}},
		{"", false, route{}},
	}
	for _, tt := range tests {
		got, ok := parseRoute(tt.path)
		if ok != tt.ok || got != tt.want {
			t.Errorf("parseRoute(%q) = %+v, %v; want %+v, %v", tt.path, got, ok, tt.want, tt.ok)
		}
	}
}

func TestValidSessionID(t *testing.T) {
	for _, id := range []string{"a", "AZaz09-._~", strings.Repeat("x", 128), store.NewID()} {
		if !validSessionID(id) {
			t.Errorf("%q refused", id)
		}
	}
	for _, id := range []string{"", strings.Repeat("x", 129), "a b", "a%20b", "a/b", "ä", "a+b", "a\x00"} {
		if validSessionID(id) {
			t.Errorf("%q accepted", id)
		}
	}
}

// TestNewSessionID: the ids the store makes are ids the routes take.
func TestNewSessionID(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		id := store.NewID()
		if len(id) != 22 || !validSessionID(id) || seen[id] {
			t.Fatalf("bad or repeated id %q", id)
		}
		seen[id] = true
	}
}

// newTestHandler provisions a serve-mode handler with its own memory store.
func newTestHandler(t testing.TB) *Handler {
	t.Helper()
	h := &Handler{
		JWT:      &jwtauth.Config{Algorithms: allAlgorithms, Secret: testSecret, Keys: []string{testKeys.RSAPEM, testKeys.ECPEM, testKeys.EdPEM}},
		StoreRaw: json.RawMessage(`{"type":"memory","name":"unit-` + t.Name() + `"}`),
	}
	ctx, _ := newTestContext(t)
	if err := h.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	// Caddy logs at INFO unless told otherwise: rejections (DEBUG) cost a
	// level check, as in production, not a write to the test's stderr.
	h.logger = zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(io.Discard), zap.InfoLevel))
	return h
}

func newRequest(method, path, token, body string) *http.Request {
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	r.Header.Set("Authorization", "Bearer "+token)
	repl := caddy.NewReplacer()
	return r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl))
}

var nextMustNotRun = caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error {
	panic("next handler called for a contract path")
})

func TestServeHTTPUnit(t *testing.T) {
	h := newTestHandler(t)
	tok := tokenFor(t, "unit")

	w := httptest.NewRecorder()
	if err := h.ServeHTTP(w, newRequest("POST", "/u/accounts/sessions", tok, `{"payload": { "a" : 1 }}`), nextMustNotRun); err != nil {
		t.Fatal(err)
	}
	var s sessionJSON
	if w.Code != 201 || json.Unmarshal(w.Body.Bytes(), &s) != nil || string(s.Payload) != `{"a":1}` {
		t.Fatalf("create: %d %s", w.Code, w.Body)
	}
	created := w.Header().Get("ETag")
	if w.Header().Get("Content-Length") != strconv.Itoa(w.Body.Len()) {
		t.Errorf("Content-Length %s for %d bytes", w.Header().Get("Content-Length"), w.Body.Len())
	}

	w = httptest.NewRecorder()
	h.ServeHTTP(w, newRequest("PUT", "/u/accounts/sessions/"+s.ID, tok, `{"payload": {"b": [1, 2]}}`), nextMustNotRun)
	if etag := w.Header().Get("ETag"); w.Code != 200 || !strings.Contains(w.Body.String(), `"payload":{"b":[1,2]}`) || len(etag) != 24 || etag == created {
		t.Fatalf("put: %d %s %v", w.Code, w.Body, w.Header())
	}

	// Off the contract's paths the next handler runs, untouched.
	called := false
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		called = true
		return nil
	})
	w = httptest.NewRecorder()
	h.ServeHTTP(w, newRequest("GET", "/u/other", "", ""), next)
	if !called || w.Body.Len() != 0 {
		t.Fatalf("pass-through: called=%v body=%s", called, w.Body)
	}
}

// BenchmarkServeHTTPPut is one valid PUT through ServeHTTP: token, contract,
// store and response, for each token algorithm.
func BenchmarkServeHTTPPut(b *testing.B) {
	h := newTestHandler(b)
	for _, alg := range []string{"HS256", "RS256", "ES256", "EdDSA"} {
		b.Run(alg, func(b *testing.B) {
			tok := sign(b, alg, claimsFor("bench"))
			w := httptest.NewRecorder()
			h.ServeHTTP(w, newRequest("POST", "/bench/accounts/sessions", tok, `{"payload":{}}`), nextMustNotRun)
			var s sessionJSON
			if err := json.Unmarshal(w.Body.Bytes(), &s); err != nil {
				b.Fatal(err, w.Body.String())
			}
			body := []byte(`{"payload":{"preferences":{"theme":"dark","resolution":"wide"}}}`)
			r := newRequest("PUT", "/bench/accounts/sessions/"+s.ID, tok, "")
			r.Header.Set("Content-Type", "application/json")
			rw := &discardWriter{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				r.Body = io.NopCloser(bytes.NewReader(body))
				r.ContentLength = int64(len(body))
				clear(rw.h)
				rw.code = 0
				if err := h.ServeHTTP(rw, r, nextMustNotRun); err != nil || rw.code != 200 {
					b.Fatalf("status %d, %v", rw.code, err)
				}
			}
		})
	}
}

// BenchmarkServeHTTPInvalidPut: the same PUT with a body that breaks the
// contract (payload an array), rejected with 400: attackers choose this path.
func BenchmarkServeHTTPInvalidPut(b *testing.B) {
	h := newTestHandler(b)
	tok := sign(b, "HS256", claimsFor("bench"))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, newRequest("POST", "/bench/accounts/sessions", tok, `{"payload":{}}`), nextMustNotRun)
	var s sessionJSON
	json.Unmarshal(w.Body.Bytes(), &s)
	for name, body := range map[string]string{
		"schema":    `{"payload":["preferences",{"theme":"dark","resolution":"wide"}]}`,
		"malformed": `{"payload":{"preferences":{"theme":"dark","resolution":"wide"}}`,
	} {
		b.Run(name, func(b *testing.B) {
			raw := []byte(body)
			r := newRequest("PUT", "/bench/accounts/sessions/"+s.ID, tok, "")
			r.Header.Set("Content-Type", "application/json")
			rw := &discardWriter{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				r.Body = io.NopCloser(bytes.NewReader(raw))
				r.ContentLength = int64(len(raw))
				clear(rw.h)
				rw.code = 0
				h.ServeHTTP(rw, r, nextMustNotRun)
				if rw.code != 400 {
					b.Fatalf("status %d", rw.code)
				}
			}
		})
	}
}

// discardWriter is a ResponseWriter that keeps only the status, so the
// benchmark measures the handler rather than a recorder's buffers.
type discardWriter struct {
	h    http.Header
	code int
}

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardWriter) WriteHeader(code int)        { d.code = code }
