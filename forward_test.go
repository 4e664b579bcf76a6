package ownidsessions

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/caddyserver/caddy/v2/caddytest"
	dto "github.com/prometheus/client_model/go"
)

// backend is a real HTTP server behind reverse_proxy that records what
// reaches it and answers what the test tells it to.
type backend struct {
	*httptest.Server
	mu       sync.Mutex
	received []receivedRequest
	answers  map[string]answer // by "METHOD path"
}

type receivedRequest struct {
	method, path, query string
	header              http.Header
	body                []byte
}

type answer struct {
	status      int
	contentType string
	body        string
}

func newBackend(t *testing.T) *backend {
	b := &backend{answers: map[string]answer{}}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		b.mu.Lock()
		b.received = append(b.received, receivedRequest{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Clone(), body})
		a, ok := b.answers[r.Method+" "+r.URL.Path]
		b.mu.Unlock()
		if !ok {
			a = answer{status: 200, contentType: "text/plain", body: "backend"}
		}
		if a.contentType != "" {
			w.Header().Set("Content-Type", a.contentType)
		}
		w.WriteHeader(a.status)
		io.WriteString(w, a.body)
	}))
	t.Cleanup(b.Close)
	return b
}

func (b *backend) answer(method, path string, a answer) {
	b.mu.Lock()
	b.answers[method+" "+path] = a
	b.mu.Unlock()
}

func (b *backend) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.received)
}

func (b *backend) last() receivedRequest {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.received[len(b.received)-1]
}

func forwardConfig(backendURL, validate, extra string) string {
	return fmt.Sprintf(`
{
`+testGlobals+`
	grace_period 1ns
}
http://localhost:9080 {
	ownid_sessions {
		mode forward
		validate_responses %s
		response_buffer 2KiB
		max_body 1KiB
		jwt {
			alg HS256
			secret {env.OWNID_TEST_SECRET}
		}
		%s
	}
	reverse_proxy %s {
		header_up X-Account {http.auth.user.id}
		header_up X-Role {http.auth.user.role}
	}
}
`, validate, extra, strings.TrimPrefix(backendURL, "http://"))
}

const validSession = `{"id":"abc","created":"2026-11-25T10:00:00.000Z","timeout":600,"lastActive":"2026-11-25T10:00:00.000Z","payload":{"a":1}}`

// fwd sends a request whose answer is the backend's, not the module's.
func fwd(t *testing.T, tc *caddytest.Tester, rq request) reply {
	t.Helper()
	rq.unchecked = true
	return call(t, tc, rq)
}

func TestForwardMode(t *testing.T) {
	be := newBackend(t)
	tc := caddytest.NewTester(t)
	tc.InitServer(forwardConfig(be.URL, "report", ""), "caddyfile")
	claims := claimsFor("fwd-user")
	claims["role"] = "agent"
	tok := sign(t, "HS256", claims)

	// A valid request reaches the backend with its body byte for byte and
	// the claims as headers; the backend's valid answer comes back as is.
	be.answer("PUT", "/app/accounts/sessions/abc", answer{200, "application/json", validSession})
	body := "{ \"payload\" :\n {\"a\": 1, \"b\": [true, null]} }"
	r := fwd(t, tc, request{method: "PUT", path: "/app/accounts/sessions/abc", token: tok, body: body})
	if r.status != 200 || string(r.body) != validSession {
		t.Fatalf("valid PUT: %d %s", r.status, r.body)
	}
	got := be.last()
	if got.method != "PUT" || got.path != "/app/accounts/sessions/abc" || string(got.body) != body {
		t.Fatalf("backend received %s %s %q", got.method, got.path, got.body)
	}
	if got.header.Get("X-Account") != "fwd-user" || got.header.Get("X-Role") != "agent" || got.header.Get("Authorization") != "Bearer "+tok {
		t.Errorf("backend headers: X-Account %q X-Role %q", got.header.Get("X-Account"), got.header.Get("X-Role"))
	}

	// Forward mode does not need sub: the backend decides what to do.
	noSub := claimsFor("")
	delete(noSub, "sub")
	if r := fwd(t, tc, request{method: "GET", path: "/app/accounts/sessions", token: sign(t, "HS256", noSub)}); r.status != 200 {
		t.Errorf("token without sub: %d", r.status)
	}

	// Rejected requests never reach the backend.
	before := be.count()
	for name, rq := range map[string]request{
		"invalid body":  {method: "PUT", path: "/app/accounts/sessions/abc", token: tok, body: `{"payload": [1]}`},
		"malformed":     {method: "PUT", path: "/app/accounts/sessions/abc", token: tok, body: `{"payload":`},
		"missing token": {method: "PUT", path: "/app/accounts/sessions/abc", body: `{"payload": {}}`},
		"bad token":     {method: "GET", path: "/app/accounts/sessions/abc", token: tok + "x"},
		"bad id":        {method: "GET", path: "/app/accounts/sessions/a%20b", token: tok},
		"method":        {method: "PATCH", path: "/app/accounts/sessions/abc", token: tok, body: `{}`},
		"media type":    {method: "POST", path: "/app/accounts/sessions", token: tok, body: `{"payload":{}}`, header: map[string]string{"Content-Type": "text/plain"}},
		"too large":     {method: "POST", path: "/app/accounts/sessions", token: tok, body: `{"payload":{"x":"` + strings.Repeat("y", 2000) + `"}}`},
	} {
		r := fwd(t, tc, rq)
		if r.status < 400 || r.status >= 500 {
			t.Errorf("%s: %d, want a 4xx", name, r.status)
		}
		r.problem(t)
	}
	if n := be.count() - before; n != 0 {
		t.Errorf("%d rejected requests reached the backend", n)
	}

	// Near misses of the contract's paths never reach the backend, token or
	// not: it might read them as the contract's paths.
	before = be.count()
	for _, p := range []string{"/app/accounts/sessions/abc%2F", "/app/accounts/sessions/", "/app/Accounts/Sessions",
		"/app/accounts/sessions/./abc", "/app/accounts//sessions"} {
		if r := fwd(t, tc, request{method: "GET", path: p}); r.status != 400 {
			t.Errorf("%s: %d, want 400", p, r.status)
		}
	}
	if n := be.count() - before; n != 0 {
		t.Errorf("%d near-miss paths reached the backend", n)
	}

	// Paths the contract does not describe are refused by default in
	// forward mode: the backend only sees what the document describes.
	before = be.count()
	r = call(t, tc, request{method: "POST", path: "/health?x=1", body: "not json"})
	if r.status != 404 || r.problem(t).Type != kindUndescribedPath.typeURI() || be.count() != before {
		t.Errorf("undescribed path: %d %s, backend reached: %v", r.status, r.body, be.count() != before)
	}
	// With undescribed pass they go through untouched.
	tc.InitServer(forwardConfig(be.URL, "report", "undescribed pass"), "caddyfile")
	r = fwd(t, tc, request{method: "POST", path: "/health?x=1", body: "not json"})
	if r.status != 200 || string(r.body) != "backend" || be.last().path != "/health" || string(be.last().body) != "not json" {
		t.Errorf("pass-through: %d %s", r.status, r.body)
	}
}

func TestForwardResponseValidation(t *testing.T) {
	be := newBackend(t)
	tok := tokenFor(t, "fwd-resp")
	broken := `{"id":"abc","created":12,"payload":"x"}`
	be.answer("GET", "/accounts/sessions/broken", answer{200, "application/json", broken})
	be.answer("GET", "/accounts/sessions/missing", answer{404, "application/problem+json", `{"type":"about:blank","title":"Not Found","status":404}`})
	be.answer("GET", "/accounts/sessions/undeclared", answer{500, "text/plain", "oops"})
	big := `{"created":"2026-11-25T10:00:00.000Z","payload":{"x":"` + strings.Repeat("z", 3000) + `"},"timeout":"not an int"}`
	be.answer("GET", "/accounts/sessions/big", answer{200, "application/json", big})
	be.answer("GET", "/accounts/sessions/ok", answer{200, "application/json", validSession})
	// Valid for a last-key-wins reader, ambiguous for the client: the
	// answer is read with the requests' one-pass parser, which refuses it.
	repeated := strings.Replace(validSession, `"timeout":600`, `"timeout":600,"timeout":700`, 1)
	be.answer("GET", "/accounts/sessions/repeated", answer{200, "application/json", repeated})

	for _, mode := range []string{"off", "report", "enforce"} {
		t.Run(mode, func(t *testing.T) {
			tc := caddytest.NewTester(t)
			tc.InitServer(forwardConfig(be.URL, mode, ""), "caddyfile")
			get := func(id string) reply {
				t.Helper()
				return fwd(t, tc, request{method: "GET", path: "/accounts/sessions/" + id, token: tok})
			}

			violations := testCounter(t, "violation")
			r := get("broken")
			if mode == "enforce" {
				if r.status != http.StatusBadGateway {
					t.Fatalf("broken answer: %d %s", r.status, r.body)
				}
				p := r.problem(t)
				if p.Type != kindBadUpstreamResponse.typeURI() || bytes.Contains(r.body, []byte(`"x"`)) {
					t.Errorf("502 problem %s", r.body)
				}
			} else if r.status != 200 || string(r.body) != broken {
				t.Fatalf("broken answer in %s: %d %s", mode, r.status, r.body)
			}
			if want := map[string]float64{"off": 0, "report": 1, "enforce": 1}[mode]; violations() != want {
				t.Errorf("violation counter moved by %v, want %v", violations(), want)
			}

			if r := get("missing"); r.status != 404 {
				t.Errorf("backend 404: %d %s", r.status, r.body)
			}
			if r := get("ok"); r.status != 200 || string(r.body) != validSession {
				t.Errorf("valid answer: %d %s", r.status, r.body)
			}
			if r := get("repeated"); (mode == "enforce") != (r.status == http.StatusBadGateway) {
				t.Errorf("an answer that repeats a key in %s: %d %s", mode, r.status, r.body)
			}
			wantUndeclared := 500
			if mode == "enforce" {
				wantUndeclared = 502
			}
			if r := get("undeclared"); r.status != wantUndeclared {
				t.Errorf("undeclared 500: %d, want %d", r.status, wantUndeclared)
			}
			// Larger than response_buffer: passed on unchecked, counted.
			unchecked := testCounter(t, "unchecked_too_large")
			if r := get("big"); r.status != 200 || string(r.body) != big {
				t.Errorf("big answer: %d (%d bytes)", r.status, len(r.body))
			}
			if want := map[string]float64{"off": 0, "report": 1, "enforce": 1}[mode]; unchecked() != want {
				t.Errorf("unchecked counter moved by %v, want %v", unchecked(), want)
			}
		})
	}
}

// testCounter returns how much the upstream_responses_total counter for
// result has moved since the call.
func testCounter(t *testing.T, result string) func() float64 {
	t.Helper()
	start := counterValue(t, result)
	return func() float64 { return counterValue(t, result) - start }
}

func counterValue(t *testing.T, result string) float64 {
	t.Helper()
	var m dto.Metric
	if err := metrics.responses.WithLabelValues(result).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// TestForwardUserSpec fronts another JSON API with its own document: a
// templated server base path, path and query parameters, a literal path
// beside a templated one, 405, pass-through, and response checks.
func TestForwardUserSpec(t *testing.T) {
	be := newBackend(t)
	be.answer("GET", "/acme/v1/pets/7", answer{200, "application/json", `{"id":7,"name":"Rex"}`})
	be.answer("GET", "/acme/v1/pets/8", answer{200, "application/json", `{"name":"no id"}`})
	be.answer("GET", "/acme/v1/pets/mine", answer{200, "application/json", `[]`})
	be.answer("GET", "/acme/v1/pets", answer{200, "application/json", `[{"id":7,"name":"Rex"}]`})
	be.answer("GET", "/globex/v1/pets/7", answer{200, "application/json", `{"id":7,"name":"Rex","tag":"dog"}`})
	be.answer("POST", "/acme/v1/pets", answer{201, "application/json", `{"id":1,"name":"Rex"}`})
	tc := caddytest.NewTester(t)
	tc.InitServer(forwardConfig(be.URL, "enforce", "spec testdata/specs/pets.yaml"), "caddyfile")
	tok := tokenFor(t, "pet-owner")

	tests := []struct {
		name   string
		rq     request
		status int
		errAt  string
	}{
		{"list with a valid query", request{method: "GET", path: "/acme/v1/pets?limit=5"}, 200, ""},
		{"query out of range", request{method: "GET", path: "/acme/v1/pets?limit=500"}, 400, "limit"},
		{"query not an integer", request{method: "GET", path: "/acme/v1/pets?limit=many"}, 400, "limit"},
		{"path parameter", request{method: "GET", path: "/acme/v1/pets/7"}, 200, ""},
		{"path parameter not an integer", request{method: "GET", path: "/acme/v1/pets/rex"}, 400, "petId"},
		{"literal path beats the template", request{method: "GET", path: "/acme/v1/pets/mine"}, 200, ""},
		{"other tenant, same base", request{method: "GET", path: "/globex/v1/pets/7"}, 200, ""},
		{"create", request{method: "POST", path: "/acme/v1/pets", body: `{"name":"Rex"}`}, 201, ""},
		{"create with an unknown field", request{method: "POST", path: "/acme/v1/pets", body: `{"name":"Rex","owner":"me"}`}, 400, ""},
		{"create without name", request{method: "POST", path: "/acme/v1/pets", body: `{"tag":"dog"}`}, 400, ""},
		{"undeclared method", request{method: "PUT", path: "/acme/v1/pets", body: `{}`}, 405, ""},
		{"backend answer without id", request{method: "GET", path: "/acme/v1/pets/8"}, 502, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.rq.token = tok
			tt.rq.unchecked = true
			before := be.count()
			r := fwd(t, tc, tt.rq)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			if tt.status == 405 && r.header.Get("Allow") != "GET, POST" {
				t.Errorf("Allow %q", r.header.Get("Allow"))
			}
			if tt.errAt != "" && !bytes.Contains(r.body, []byte(`"location":"`+tt.errAt)) {
				t.Errorf("errors do not name %s: %s", tt.errAt, r.body)
			}
			reached := be.count() > before
			if reached != (tt.status < 400 || tt.status == 502) {
				t.Errorf("reached the backend: %v", reached)
			}
		})
	}
	// Near misses of the document's paths are refused.
	for _, p := range []string{"/acme/v1/PETS", "/acme/v1/pets/", "/acme/v1//pets", "/acme/v1/pets/7%2F8", "/ACME/V1/pets"} {
		if r := fwd(t, tc, request{method: "GET", path: p}); r.status != 400 {
			t.Errorf("%s: %d, want 400", p, r.status)
		}
	}
	// Paths the document does not describe are refused by default...
	for _, p := range []string{"/acme/v2/pets", "/acme/v1/owners", "/pets"} {
		if r := fwd(t, tc, request{method: "GET", path: p}); r.status != 404 {
			t.Errorf("%s: %d %s, want 404 undescribed-path", p, r.status, r.body)
		}
	}
	// ...and pass through, with no token, under undescribed pass.
	tc.InitServer(forwardConfig(be.URL, "enforce", "spec testdata/specs/pets.yaml\n\t\tundescribed pass"), "caddyfile")
	for _, p := range []string{"/acme/v2/pets", "/acme/v1/owners", "/pets"} {
		if r := fwd(t, tc, request{method: "GET", path: p}); r.status != 200 || string(r.body) != "backend" {
			t.Errorf("%s: %d %s", p, r.status, r.body)
		}
	}
}

// TestResponseCheckWriter: the writer holds an answer up to its limit, then
// streams it as it comes; it flushes only while streaming.
func TestResponseCheckWriter(t *testing.T) {
	w := httptest.NewRecorder()
	rc := &responseCheck{w: w, header: http.Header{}, limit: 8, buf: new(bytes.Buffer)}
	rc.Header().Set("X-Upstream", "1")
	rc.WriteHeader(201)
	rc.Write([]byte("1234"))
	if err := rc.FlushError(); err != nil || w.Flushed || w.Body.Len() != 0 || rc.streaming {
		t.Fatalf("held answer leaked: flushed=%v body=%q", w.Flushed, w.Body)
	}
	rc.Write([]byte("5678"))
	if rc.streaming || w.Body.Len() != 0 {
		t.Fatal("an answer of exactly the limit is not held")
	}
	rc.Write([]byte("9"))
	if !rc.streaming || w.Code != 201 || w.Body.String() != "123456789" || w.Header().Get("X-Upstream") != "1" {
		t.Fatalf("streaming: %v %d %q", rc.streaming, w.Code, w.Body)
	}
	if err := rc.FlushError(); err != nil || !w.Flushed {
		t.Fatalf("flush while streaming: %v %v", err, w.Flushed)
	}

	// A held answer is released as it was.
	w = httptest.NewRecorder()
	rc = &responseCheck{w: w, header: http.Header{}, limit: 100, buf: new(bytes.Buffer)}
	rc.Write([]byte("ok"))
	if err := rc.release(); err != nil || w.Code != 200 || w.Body.String() != "ok" {
		t.Fatalf("release: %v %d %q", err, w.Code, w.Body)
	}
}

// TestResponseCheckStreamsBodilessAnswers: an answer whose status the
// operation declares with no body described is sent on at once (its status
// was all there was to check); any other is held.
func TestResponseCheckStreamsBodilessAnswers(t *testing.T) {
	// 204 declared without a body, 200 with one.
	op := &operation{responses: map[string]*declaredResponse{"204": {}, "200": {mediaTypes: []string{"application/json"}}}}
	w := httptest.NewRecorder()
	rc := &responseCheck{w: w, header: http.Header{}, limit: 100, buf: new(bytes.Buffer), op: op}
	rc.WriteHeader(http.StatusNoContent)
	if !rc.streaming || !rc.checkedStatus || w.Code != http.StatusNoContent {
		t.Fatalf("204: streaming %v, checked %v, sent %d", rc.streaming, rc.checkedStatus, w.Code)
	}
	w = httptest.NewRecorder()
	rc = &responseCheck{w: w, header: http.Header{}, limit: 100, buf: new(bytes.Buffer), op: op}
	rc.Write([]byte(`{}`)) // an implicit 200, which has a body to check
	if rc.streaming || w.Body.Len() != 0 {
		t.Fatalf("a 200 was not held: %q", w.Body)
	}
}

// TestForwardBrokenAnswers: a backend answer that breaks off (a body short
// of its Content-Length, a gzip body that does not decompress: reverse_proxy
// gives up on both with http.ErrAbortHandler) is never sent in part while
// it is held: enforce answers the 502 problem, report reverse_proxy's 502
// for a failed backend; one that breaks off after it has grown past
// response_buffer and streams closes the connection, as reverse_proxy does.
// A Content-Encoding of identity is no encoding in any letter case, and a
// 502 the module answers is counted with its problem type.
func TestForwardBrokenAnswers(t *testing.T) {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/accounts/sessions/short":
			w.Header().Set("Content-Length", "5000")
			io.WriteString(w, validSession)
		case "/accounts/sessions/badgzip":
			w.Header().Set("Content-Encoding", "gzip")
			io.WriteString(w, validSession)
		case "/accounts/sessions/IDENTITY":
			w.Header().Set("Content-Encoding", "IDENTITY")
			io.WriteString(w, `{"id":"abc","created":"yesterday","payload":[]}`)
		case "/accounts/sessions/shortbig":
			w.Header().Set("Content-Length", "10000")
			io.WriteString(w, `{"payload":{"x":"`+strings.Repeat("z", 4000))
		}
	}))
	t.Cleanup(be.Close)
	tok := tokenFor(t, "fwd-broken")
	for _, mode := range []string{"report", "enforce"} {
		t.Run(mode, func(t *testing.T) {
			tc := caddytest.NewTester(t)
			tc.InitServer(forwardConfig(be.URL, mode, ""), "caddyfile")
			for _, id := range []string{"short", "badgzip"} {
				incomplete := testCounter(t, "incomplete")
				refused := requestCount(t, "getSession", "5xx", "bad-upstream-response")
				r := fwd(t, tc, request{method: "GET", path: "/accounts/sessions/" + id, token: tok})
				if r.status != http.StatusBadGateway {
					t.Fatalf("%s answer in %s: %d %s", id, mode, r.status, r.body)
				}
				if bytes.Contains(r.body, []byte(`"abc"`)) {
					t.Errorf("%s answer in %s: part of the held answer was sent: %s", id, mode, r.body)
				}
				if mode == "enforce" {
					if p := r.problem(t); p.Type != kindBadUpstreamResponse.typeURI() {
						t.Errorf("%s answer: problem %s", id, r.body)
					}
					if refused() != 1 {
						t.Errorf("%s answer: requests_total{problem=bad-upstream-response} moved by %v, want 1", id, refused())
					}
				}
				if incomplete() != 1 {
					t.Errorf("%s answer: incomplete counter moved by %v, want 1", id, incomplete())
				}
			}

			r := fwd(t, tc, request{method: "GET", path: "/accounts/sessions/IDENTITY", token: tok})
			if (mode == "enforce") != (r.status == http.StatusBadGateway) {
				t.Errorf("a broken answer with Content-Encoding IDENTITY in %s: %d %s", mode, r.status, r.body)
			}

			// Past response_buffer (2 KiB) the answer streams: a break
			// then closes the connection before the declared length,
			// and the request is counted all the same.
			incomplete := testCounter(t, "incomplete")
			forwarded := requestCount(t, "getSession", "forwarded", "")
			getCut(t, tok, "shortbig")
			if incomplete() != 1 || forwarded() != 1 {
				t.Errorf("a streamed answer that broke off: incomplete moved by %v, requests_total{forwarded} by %v, want 1 and 1", incomplete(), forwarded())
			}
		})
	}
	// Unchecked answers stream from the start: a break closes the
	// connection, and the request is counted.
	t.Run("off", func(t *testing.T) {
		tc := caddytest.NewTester(t)
		tc.InitServer(forwardConfig(be.URL, "off", ""), "caddyfile")
		forwarded := requestCount(t, "getSession", "forwarded", "")
		getCut(t, tok, "short")
		if forwarded() != 1 {
			t.Errorf("an unchecked answer that broke off: requests_total{forwarded} moved by %v, want 1", forwarded())
		}
	})
}

// getCut GETs a session whose answer breaks off after part of it was sent,
// and wants the body to read as incomplete.
func getCut(t *testing.T, tok, id string) {
	t.Helper()
	req, _ := http.NewRequest("GET", base+"/accounts/sessions/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
	if err != nil {
		return // cut before the status line reached the client
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err == nil {
		t.Errorf("%s: an answer that broke off after %d bytes read as complete", id, n)
	}
}

// requestCount returns how much requests_total for the labels has moved
// since the call.
func requestCount(t *testing.T, operation, class, problem string) func() float64 {
	t.Helper()
	value := func() float64 {
		var m dto.Metric
		if err := metrics.requests.WithLabelValues(operation, class, problem).Write(&m); err != nil {
			t.Fatal(err)
		}
		return m.GetCounter().GetValue()
	}
	start := value()
	return func() float64 { return value() - start }
}

func TestEncoded(t *testing.T) {
	for _, c := range []struct {
		values []string
		want   bool
	}{
		{nil, false},
		{[]string{""}, false},
		{[]string{"identity"}, false},
		{[]string{"IDENTITY"}, false},
		{[]string{" Identity , identity"}, false},
		{[]string{"identity", "identity"}, false},
		{[]string{"gzip"}, true},
		{[]string{"identity, gzip"}, true},
		{[]string{"identity", "br"}, true},
		{[]string{"GZIP"}, true},
	} {
		if got := encoded(http.Header{"Content-Encoding": c.values}); got != c.want {
			t.Errorf("Content-Encoding %q: encoded %v, want %v", c.values, got, c.want)
		}
	}
}
