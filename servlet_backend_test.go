package ownidsessions

import (
	"encoding/json"
	"net"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestServletBackend talks to Tomcat directly, over raw connections, and
// pins down what it does with each spelling of the session paths (the table
// at the top of this file); the forward-mode tests rely on these facts.
func TestServletBackend(t *testing.T) {
	s := startServlet(t)

	// rejected marks a target Tomcat answers itself: no servlet runs.
	const rejected = ""
	cases := []struct {
		method, target string
		status         int
		route          string // rejected: the servlet never saw it
		pathInfo       string // getPathInfo(), when the servlet saw it
	}{
		{"GET", "/app/accounts/sessions", 200, "listSessions", "/app/accounts/sessions"},
		{"GET", "/app/accounts;x=1/sessions", 200, "listSessions", "/app/accounts/sessions"},
		{"PUT", "/app/accounts;/sessions/s1", 200, "updateSession:s1", "/app/accounts/sessions/s1"},
		{"GET", "/app;a/accounts;b/sessions;c/s1;d", 200, "getSession:s1", "/app/accounts/sessions/s1"},
		{"GET", "/app/accounts/sessions;jsessionid=1", 200, "listSessions", "/app/accounts/sessions"},
		{"GET", "/app/accounts/sessions/s1%3bx", 200, "getSession:s1;x", "/app/accounts/sessions/s1;x"},
		{"GET", "/app/accounts/%73essions", 200, "listSessions", "/app/accounts/sessions"},
		{"GET", "/app/./accounts/sessions", 200, "listSessions", "/app/accounts/sessions"},
		{"GET", "/app/x/../accounts/sessions", 200, "listSessions", "/app/accounts/sessions"},
		{"GET", "/x/..;/app/accounts/sessions", 200, "listSessions", "/app/accounts/sessions"},
		{"GET", "/app/accounts/ses%73ions/%2e%2e/sessions", 200, "listSessions", "/app/accounts/sessions"},
		{"GET", "/app/accounts/sessions/%2e", 200, "listSessions", "/app/accounts/sessions"},
		{"GET", "/app/accounts/sessions/%2e%2e", 404, "none", "/app/accounts"},
		{"GET", "//app/accounts/sessions", 200, "listSessions", "/app/accounts/sessions"},
		{"GET", `/app/accounts\sessions`, 200, "listSessions", "/app/accounts/sessions"},
		{"GET", "/app/accounts%5csessions", 200, "listSessions", "/app/accounts/sessions"},
		{"GET", "/app/accounts%5Csessions", 200, "listSessions", "/app/accounts/sessions"},
		{"GET", "/app/accounts%2fsessions", 200, "listSessions", "/app/accounts/sessions"},
		{"DELETE", "/app/accounts%2Fsessions/s1", 204, "deleteSession:s1", "/app/accounts/sessions/s1"},
		{"GET", "/app/accounts/sessions/a%2fb", 404, "none", "/app/accounts/sessions/a/b"},
		{"GET", "/app/accounts%252fsessions", 404, "none", "/app/accounts%2fsessions"},
		{"GET", "/app/accounts/sessions%3f", 404, "none", "/app/accounts/sessions?"},
		{"GET", "/app/accounts/sessions%2f", 404, "none", "/app/accounts/sessions/"},
		{"GET", "/app/accounts/sessions/", 404, "none", "/app/accounts/sessions/"},
		{"GET", "/app/accounts/sessions/abc/extra", 404, "none", "/app/accounts/sessions/abc/extra"},
		{"GET", "/app/accounts/%C5%BFessions", 404, "none", "/app/accounts/\u017fessions"},
		{"GET", "/app/ACCOUNTS/sessions", 404, "none", "/app/ACCOUNTS/sessions"},
		{"GET", "/accounts/sessions", 200, "listSessions", "/accounts/sessions"},
		{"GET", "http://evil/app/accounts/sessions", 200, "listSessions", "/app/accounts/sessions"},
		{"GET", "/app/accounts/sessions?a=%zz", 200, "listSessions", "/app/accounts/sessions"},
		{"POST", "/app/accounts/sessions", 201, "createSession", "/app/accounts/sessions"},
		{"GET", "/app/accounts/sessions%00", 400, rejected, ""},
		{"GET", "/app/accounts/sessions/%C5", 400, rejected, ""},
		{"GET", "/../app/accounts/sessions", 400, rejected, ""},
		{"GET", "/app/accounts/sessions#x", 400, rejected, ""},
	}
	for _, c := range cases {
		s.reset(t)
		status, _, body := s.exchange(t, servletRaw(c.method, c.target))
		got := s.received(t)
		switch {
		case status != c.status:
			t.Errorf("%s %s: Tomcat answered %d, want %d (%s)", c.method, c.target, status, c.status, body)
		case c.route == rejected && len(got) != 0:
			t.Errorf("%s %s: Tomcat rejected it, yet the servlet recorded %+v", c.method, c.target, got)
		case c.route == rejected:
		case len(got) != 1:
			t.Errorf("%s %s: the servlet recorded %d requests, want 1: %+v", c.method, c.target, len(got), got)
		case got[0].Route != c.route || got[0].PathInfo != c.pathInfo || got[0].Method != c.method:
			t.Errorf("%s %s: servlet saw %s path info %q, routed %q; want %s %q, %q",
				c.method, c.target, got[0].Method, got[0].PathInfo, got[0].Route, c.method, c.pathInfo, c.route)
		}
	}

	// What the servlet API reports beyond the path, and the answers.
	s.reset(t)
	raw := "POST /my-app/accounts;v=2/sessions?x=1&y=%2f HTTP/1.1\r\nHost: 127.0.0.1\r\n" +
		"Content-Type: application/json\r\nX-Test: one\r\nx-test: two\r\nX-Latin: caf\xe9\r\n" +
		"Content-Length: 5\r\nConnection: close\r\n\r\n{}\xff\x00\n"
	status, header, body := s.exchange(t, raw)
	loc := header.Get("Location")
	if status != 201 || !strings.HasPrefix(loc, "/my-app/accounts/sessions/created-") || header.Get("Content-Type") != "application/json" {
		t.Errorf("create: %d %v %s", status, header, body)
	}
	var session map[string]any
	if err := json.Unmarshal(body, &session); err != nil || session["id"] != loc[strings.LastIndexByte(loc, '/')+1:] || session["created"] == nil {
		t.Errorf("create answered %s (%v)", body, err)
	}
	got := s.received(t)
	if len(got) != 1 {
		t.Fatalf("recorded %+v", got)
	}
	r := got[0]
	want := servletRequest{Method: "POST", RequestURI: "/my-app/accounts;v=2/sessions", ServletPath: "",
		PathInfo: "/my-app/accounts/sessions", QueryString: "x=1&y=%2f", Route: "createSession", App: "my-app",
		Status: 201, Body: "{}\xff\x00\n"}
	h := r.Headers
	r.Headers = nil
	if !reflect.DeepEqual(r, want) {
		t.Errorf("recorded\n%+v\nwant\n%+v", r, want)
	}
	if v := h["X-Test"]; len(v) != 2 || v[0] != "one" || v[1] != "two" {
		t.Errorf("X-Test recorded as %q", v)
	}
	if v := http.Header(h).Get("X-Latin"); v != "caf\xe9" {
		t.Errorf("X-Latin recorded as %q", v)
	}
	if v := http.Header(h).Get("Content-Length"); v != "5" {
		t.Errorf("Content-Length recorded as %q", v)
	}

	for _, c := range []struct {
		method, target string
		status         int
		contentType    string
		body           string
	}{
		{"GET", "/app/accounts/sessions", 200, "application/json", "[]"},
		{"GET", "/app/accounts/sessions/s1", 200, "application/json", `{"id":"s1",`},
		{"DELETE", "/app/accounts/sessions/s1", 204, "", ""},
		{"PATCH", "/app/accounts/sessions/s1", 404, "application/problem+json", `{"type":"about:blank"`},
	} {
		status, header, body := s.exchange(t, servletRaw(c.method, c.target))
		if status != c.status || header.Get("Content-Type") != c.contentType || !strings.HasPrefix(string(body), c.body) {
			t.Errorf("%s %s: %d %q %s", c.method, c.target, status, header.Get("Content-Type"), body)
		}
	}

	// Bound to loopback only: the port is not reachable on another address
	// of this machine (when it has one).
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			ip, ok := a.(*net.IPNet)
			if !ok || ip.IP.IsLoopback() || ip.IP.To4() == nil {
				continue
			}
			_, port, _ := net.SplitHostPort(s.Addr)
			if c, err := net.DialTimeout("tcp", net.JoinHostPort(ip.IP.String(), port), time.Second); err == nil {
				c.Close()
				t.Errorf("Tomcat answers on %s too", ip.IP)
			}
		}
	}
}
