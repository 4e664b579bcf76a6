package ownidsessions

import (
	"bufio"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/golang-jwt/jwt/v5"
)

// rawTo sends one raw request to addr and reads the answer; a connection
// closed without an answer reads as status 0.
func rawTo(t *testing.T, addr, raw string) (int, []byte) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(conn, raw)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

func rawWith(method, target string, headers []string, body string) string {
	var b strings.Builder
	b.WriteString(method + " " + target + " HTTP/1.1\r\nHost: localhost:9080\r\nConnection: close\r\n")
	for _, h := range headers {
		b.WriteString(h + "\r\n")
	}
	if body != "" {
		b.WriteString("Content-Length: " + strconv.Itoa(len(body)) + "\r\n")
	}
	b.WriteString("\r\n" + body)
	return b.String()
}

// unsignedToken is an alg "none" token for sub: it must never pass.
func unsignedToken(sub string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + enc([]byte(`{"sub":"`+sub+`","exp":4102444800}`)) + "."
}

// recordingBackend is what the end-to-end path tests need of a backend:
// where it listens, and how many requests it has seen.
type recordingBackend struct {
	name  string
	url   string
	count func() int
	reset func()
}

// TestForwardPaths: in forward mode behind a real reverse_proxy, to a real
// Tomcat and to a Go backend, no spelling of a contract path other than its
// canonical form reaches the backend, with or without a token; undescribed
// paths reach it only under undescribed pass; and off-contract content is
// refused with a valid token. The backends' own records prove it.
func TestForwardPaths(t *testing.T) {
	tomcat := startServlet(t)
	gob := newBackend(t)
	backends := []recordingBackend{
		{"tomcat", tomcat.URL, func() int { return len(tomcat.received(t)) }, func() { tomcat.reset(t) }},
		{"go", gob.URL, gob.count, func() {}},
	}
	tc := caddytest.NewTester(t)
	valid := tokenFor(t, "paths")
	tokens := map[string]string{"no token": "", "alg none": unsignedToken("paths"), "valid": valid}
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			tc.InitServer(forwardConfig(be.url, "off", ""), "caddyfile")
			be.reset()
			// The canonical path goes through.
			if r := call(t, tc, request{method: "GET", path: "/app/accounts/sessions", token: valid, unchecked: true}); r.status != 200 || be.count() != 1 {
				t.Fatalf("canonical path: %d, backend saw %d", r.status, be.count())
			}
			be.reset()
			before := be.count()
			for _, target := range nearMissTargets {
				for name, tok := range tokens {
					headers := []string{}
					if tok != "" {
						headers = append(headers, "Authorization: Bearer "+tok)
					}
					method, body := "GET", ""
					if strings.Contains(target, "/s1") {
						method, body = "PUT", `{"payload": 5}`
						headers = append(headers, "Content-Type: application/json")
					}
					status, answer := rawTo(t, "127.0.0.1:9080", rawWith(method, target, headers, body))
					if status != 400 {
						t.Errorf("%s %s (%s): %d %s, want 400", method, target, name, status, answer)
					}
				}
			}
			if n := be.count() - before; n != 0 {
				t.Errorf("%d near misses reached the backend", n)
			}
			// Undescribed paths: refused by default, passed with
			// undescribed pass.
			for _, target := range undescribedTargets {
				status, _ := rawTo(t, "127.0.0.1:9080", rawWith("GET", target, nil, ""))
				if status != 404 {
					t.Errorf("undescribed %s: %d, want 404", target, status)
				}
			}
			if n := be.count() - before; n != 0 {
				t.Errorf("%d undescribed paths reached the backend under undescribed refuse", n)
			}
			tc.InitServer(forwardConfig(be.url, "off", "undescribed pass"), "caddyfile")
			for _, target := range undescribedTargets {
				rawTo(t, "127.0.0.1:9080", rawWith("GET", target, nil, ""))
			}
			if n := be.count() - before; n != len(undescribedTargets) {
				t.Errorf("under undescribed pass %d of %d undescribed paths reached the backend", n, len(undescribedTargets))
			}
			// Near misses stay refused whatever undescribed says.
			before = be.count()
			for _, target := range nearMissTargets[:5] {
				if status, _ := rawTo(t, "127.0.0.1:9080", rawWith("GET", target, nil, "")); status != 400 {
					t.Errorf("%s under undescribed pass: %d, want 400", target, status)
				}
			}
			// Off-contract content, with a valid token.
			auth := "Authorization: Bearer " + valid
			ctJSON := "Content-Type: application/json"
			offContract := []struct {
				name, method, target string
				headers              []string
				body                 string
			}{
				{"body on GET", "GET", "/app/accounts/sessions", []string{auth, ctJSON}, `{"payload":{}}`},
				{"body on DELETE", "DELETE", "/app/accounts/sessions/s1", []string{auth, ctJSON}, `{"payload":{}}`},
				{"chunked body on GET", "GET", "/app/accounts/sessions", []string{auth, "Transfer-Encoding: chunked"}, ""},
				{"X-HTTP-Method-Override", "GET", "/app/accounts/sessions", []string{auth, "X-HTTP-Method-Override: DELETE"}, ""},
				{"X-Method-Override", "GET", "/app/accounts/sessions", []string{auth, "X-Method-Override: DELETE"}, ""},
				{"_method", "GET", "/app/accounts/sessions?_method=DELETE", []string{auth}, ""},
				{"_METHOD", "GET", "/app/accounts/sessions?x=1&_METHOD=DELETE", []string{auth}, ""},
				{"escaped _method", "GET", "/app/accounts/sessions?%5Fmethod=DELETE", []string{auth}, ""},
				{"query with ;", "GET", "/app/accounts/sessions?a=1;_method=DELETE", []string{auth}, ""},
				{"two Content-Types", "PUT", "/app/accounts/sessions/s1", []string{auth, ctJSON, "Content-Type: text/plain"}, `{"payload":{}}`},
				{"case-variant payload", "PUT", "/app/accounts/sessions/s1", []string{auth, ctJSON}, `{"payload": {}, "Payload": "x"}`},
				{"case-variant timeout", "POST", "/app/accounts/sessions", []string{auth, ctJSON}, `{"payload": {}, "timeout": 60, "TIMEOUT": -5}`},
				{"X-Original-URL", "GET", "/app/accounts/sessions", []string{auth, "X-Original-URL: /admin"}, ""},
				{"X-Rewrite-URL", "GET", "/app/accounts/sessions", []string{auth, "X-Rewrite-URL: /admin"}, ""},
				{"X-Forwarded-Method", "GET", "/app/accounts/sessions", []string{auth, "X-Forwarded-Method: DELETE"}, ""},
				{"X-Original-Method", "GET", "/app/accounts/sessions", []string{auth, "X-Original-Method: DELETE"}, ""},
				{"PHP .method", "GET", "/app/accounts/sessions?.method=DELETE", []string{auth}, ""},
				{"PHP space method", "GET", "/app/accounts/sessions?%20method=DELETE", []string{auth}, ""},
				{"PHP _method[]", "GET", "/app/accounts/sessions?_method[]=DELETE", []string{auth}, ""},
				{"_method escaped twice", "GET", "/app/accounts/sessions?%255fmethod=DELETE", []string{auth}, ""},
				{"_method with a NUL", "GET", "/app/accounts/sessions?_method%00=DELETE", []string{auth}, ""},
				{"_method in the body", "POST", "/app/accounts/sessions", []string{auth, ctJSON}, `{"payload":{},"_method":"DELETE"}`},
				{"query value that does not parse", "GET", "/app/accounts/sessions?a=%zz", []string{auth}, ""},
				{"preflight with a rewriting header", "OPTIONS", "/app/accounts/sessions", []string{"Origin: https://evil.example", "Access-Control-Request-Method: GET", "X-Original-URL: /app/accounts/sessions/victim"}, ""},
				{"preflight with _method", "OPTIONS", "/app/accounts/sessions?_method=DELETE", []string{"Origin: https://evil.example", "Access-Control-Request-Method: GET"}, ""},
				{"preflight with a body", "OPTIONS", "/app/accounts/sessions", []string{"Origin: https://evil.example", "Access-Control-Request-Method: GET", ctJSON}, `{"payload":{"evil":1}}`},
				{"trailers", "POST", "/app/accounts/sessions", []string{auth, ctJSON, "Transfer-Encoding: chunked", "Trailer: X-HTTP-Method-Override"}, ""},
			}
			for _, c := range offContract {
				raw := rawWith(c.method, c.target, c.headers, c.body)
				switch c.name {
				case "chunked body on GET":
					raw = strings.Replace(raw, "\r\n\r\n", "\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 1)
				case "trailers":
					raw = strings.Replace(raw, "\r\n\r\n", "\r\n\r\ne\r\n{\"payload\":{}}\r\n0\r\nX-HTTP-Method-Override: DELETE\r\n\r\n", 1)
				}
				if status, answer := rawTo(t, "127.0.0.1:9080", raw); status != 400 {
					t.Errorf("%s: %d %s, want 400", c.name, status, answer)
				}
			}
			if n := be.count() - before; n != 0 {
				t.Errorf("%d off-contract requests reached the backend", n)
			}
			// A sub with a NUL is refused in forward mode too.
			nul := "Authorization: Bearer " + sign(t, "HS256", claimsFor("u1\x00"))
			if status, _ := rawTo(t, "127.0.0.1:9080", rawWith("GET", "/app/accounts/sessions", []string{nul}, "")); status != 401 || be.count() != before {
				t.Errorf("a sub with a NUL: %d, backend reached %v", status, be.count() != before)
			}
		})
	}
}

// TestForwardSeedSpec: with the seed document (server
// https://server.ownid.com/{appId}), a path without the app segment is not
// a path of the document: refused by default, never forwarded unchecked.
func TestForwardSeedSpec(t *testing.T) {
	be := newBackend(t)
	tc := caddytest.NewTester(t)
	tc.InitServer(forwardConfig(be.URL, "off", "spec testdata/specs/seed-update-session.yaml"), "caddyfile")
	r := call(t, tc, request{method: "PUT", path: "/accounts/sessions/abc", body: `{"payload":"x"}`, unchecked: true})
	if r.status != 404 || be.count() != 0 {
		t.Fatalf("PUT without the app segment: %d, backend saw %d", r.status, be.count())
	}
	if r := call(t, tc, request{method: "PUT", path: "/app/accounts/sessions/abc", body: `{"payload":{}}`, unchecked: true}); r.status != 401 || be.count() != 0 {
		t.Fatalf("PUT under an app without a token: %d, backend saw %d", r.status, be.count())
	}
	if r := fwd(t, tc, request{method: "PUT", path: "/app/accounts/sessions/abc", token: tokenFor(t, "seed"), body: `{"payload":{}}`}); r.status != 200 || be.count() != 1 {
		t.Fatalf("PUT under an app with a token: %d, backend saw %d", r.status, be.count())
	}
}

// TestEnforceKeepsEarlierHeadersAndChecksFormats: a backend answer whose
// created is not a date-time is a violation, and the 502 that replaces it
// keeps the headers earlier handlers set and none of the backend's.
func TestEnforceKeepsEarlierHeadersAndChecksFormats(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Backend-Secret", "internal")
		io.WriteString(w, `{"id":"abc","created":"yesterday","timeout":600,"lastActive":"2026-11-25T10:00:00.000Z","payload":{}}`)
	}))
	t.Cleanup(backend.Close)
	tc := caddytest.NewTester(t)
	cfg := strings.Replace(forwardConfig(backend.URL, "enforce", ""), "\townid_sessions {",
		"\theader Strict-Transport-Security \"max-age=63072000\"\n\theader Access-Control-Allow-Origin https://app.example\n\townid_sessions {", 1)
	tc.InitServer(cfg, "caddyfile")
	r := call(t, tc, request{method: "GET", path: "/app/accounts/sessions/abc", token: tokenFor(t, "fmt")})
	if r.status != 502 {
		t.Fatalf("created \"yesterday\": %d %s, want 502", r.status, r.body)
	}
	if r.header.Get("Strict-Transport-Security") == "" || r.header.Get("Access-Control-Allow-Origin") != "https://app.example" {
		t.Errorf("the 502 lost the headers earlier handlers set: %v", r.header)
	}
	if r.header.Get("X-Backend-Secret") != "" {
		t.Errorf("the 502 carries the refused answer's headers: %v", r.header)
	}
}

// TestResponseHygiene: Location is a path on this host, every answer is
// no-store, JSON answers are nosniff, and a token with crit is refused.
func TestResponseHygiene(t *testing.T) {
	tc := newServeTester(t, 100)
	tok := tokenFor(t, "hygiene")
	status, body := rawTo(t, "127.0.0.1:9080", rawWith("POST", "//evil.example/accounts/sessions",
		[]string{"Authorization: Bearer " + tok, "Content-Type: application/json"}, `{"payload":{}}`))
	if status != 400 {
		t.Fatalf("POST //evil.example/accounts/sessions: %d %s, want 400", status, body)
	}
	s, r := create(t, tc, "/app", tok, `{"payload":{}}`)
	if loc := r.header.Get("Location"); !strings.HasPrefix(loc, "/app/accounts/sessions/") || strings.HasPrefix(loc, "//") {
		t.Errorf("Location %q", loc)
	}
	if r.header.Get("X-Content-Type-Options") != "nosniff" || r.header.Get("Cache-Control") != "no-store" {
		t.Errorf("201 headers: %v", r.header)
	}
	r = call(t, tc, request{method: "DELETE", path: "/app/accounts/sessions/" + s.ID, token: tok})
	if r.status != 204 || r.header.Get("Cache-Control") != "no-store" {
		t.Errorf("204: Cache-Control %q", r.header.Get("Cache-Control"))
	}
	r = call(t, tc, request{method: "GET", path: "/app/accounts/sessions/nosuch", token: tok})
	if r.header.Get("X-Content-Type-Options") != "nosniff" || r.header.Get("Cache-Control") != "no-store" {
		t.Errorf("404 problem headers: %v", r.header)
	}
	crit := jwt.NewWithClaims(jwt.SigningMethodHS256, claimsFor("hygiene"))
	crit.Header["crit"] = []string{"exp"}
	signed, _ := crit.SignedString([]byte(testSecret))
	r = call(t, tc, request{method: "GET", path: "/app/accounts/sessions", token: signed})
	if r.status != 401 || r.header.Get("WWW-Authenticate") != `Bearer realm="ownid_sessions", error="invalid_token"` {
		t.Errorf("crit token: %d %q", r.status, r.header.Get("WWW-Authenticate"))
	}
}

// TestStrict: with strict, undeclared query parameters, headers and body
// properties are refused before the backend; a session's payload is free.
func TestStrict(t *testing.T) {
	be := newBackend(t)
	be.answer("PUT", "/app/accounts/sessions/s1", answer{200, "application/json", validSession})
	tc := caddytest.NewTester(t)
	tok := tokenFor(t, "strict")
	tc.InitServer(forwardConfig(be.URL, "off", ""), "caddyfile")
	loose := request{method: "PUT", path: "/app/accounts/sessions/s1?debug=1", token: tok, body: `{"payload":{},"extra":1}`, header: map[string]string{"X-Debug": "1"}}
	if r := fwd(t, tc, loose); r.status != 200 {
		t.Fatalf("without strict, undeclared things pass: %d %s", r.status, r.body)
	}
	tc.InitServer(forwardConfig(be.URL, "off", "strict"), "caddyfile")
	for _, c := range []struct {
		name  string
		rq    request
		errAt string
	}{
		{"query", request{method: "GET", path: "/app/accounts/sessions?debug=1"}, "\"location\":\"debug\""},
		{"header", request{method: "GET", path: "/app/accounts/sessions", header: map[string]string{"X-Debug": "1"}}, "\"location\":\"X-Debug\""},
		{"body property", request{method: "PUT", path: "/app/accounts/sessions/s1", body: `{"payload":{},"extra":1}`}, "\"location\":\"/extra\""},
	} {
		c.rq.token = tok
		before := be.count()
		r := fwd(t, tc, c.rq)
		if r.status != 400 || be.count() != before || !strings.Contains(string(r.body), c.errAt) {
			t.Errorf("strict %s: %d %s, backend reached %v; want 400 naming %s", c.name, r.status, r.body, be.count() != before, c.errAt)
		}
	}
	free := request{method: "PUT", path: "/app/accounts/sessions/s1", token: tok, body: `{"payload":{"deep":{"any":[1,{"thing":true}]}}}`,
		header: map[string]string{"If-Match": `"1"`, "Accept": "application/json", "User-Agent": "test"}}
	if r := fwd(t, tc, free); r.status != 200 {
		t.Errorf("strict with declared headers and a free payload: %d %s", r.status, r.body)
	}
}
