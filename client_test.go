package ownidsessions

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
)

// The end-to-end tests' client: call sends one request through the real
// Caddy and returns the response with its body read (a reply). Every answer
// from the module is checked against the contract document, as a client of
// the contract would see it.
type reply struct {
	status int
	header http.Header
	body   []byte
}

func (r reply) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("body %q is not JSON: %v", r.body, err)
	}
}

func (r reply) problem(t *testing.T) problemBody {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type = %q, want application/problem+json (body %q)", ct, r.body)
	}
	var p problemBody
	r.json(t, &p)
	if p.Status != r.status || !strings.HasPrefix(p.Type, problemTypeBase) || p.Title == "" || p.Detail == "" {
		t.Fatalf("incomplete problem for status %d: %+v", r.status, p)
	}
	return p
}

type request struct {
	method, path, token, body string
	header                    map[string]string
	// unchecked skips checking the answer against the embedded contract:
	// for answers that are not the module's own (forward mode).
	unchecked bool
}

func call(t *testing.T, tc *caddytest.Tester, rq request) reply {
	t.Helper()
	var body io.Reader
	if rq.body != "" {
		body = strings.NewReader(rq.body)
	}
	req, err := http.NewRequest(rq.method, base+rq.path, body)
	if err != nil {
		t.Fatal(err)
	}
	if rq.token != "" {
		req.Header.Set("Authorization", "Bearer "+rq.token)
	}
	if rq.body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range rq.header {
		req.Header.Set(k, v)
	}
	resp, err := doSettled(t, tc, req)
	if err != nil {
		t.Fatalf("%s %s: %v", rq.method, rq.path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := reply{status: resp.StatusCode, header: resp.Header, body: data}
	checkAgainstContract(t, rq, resp, data)
	return r
}

// doSettled sends req, once more if the connection was dropped before any
// answer came. Caddy binds each config's listener anew with SO_REUSEPORT, so
// a connection made while a config is being replaced can land in the old
// listener's queue and be reset when it closes, before any handler read it:
// that is the reload, not the module under test.
func doSettled(t *testing.T, tc *caddytest.Tester, req *http.Request) (*http.Response, error) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		if req.GetBody != nil && attempt > 1 {
			body, err := req.GetBody()
			if err != nil {
				return nil, err
			}
			req.Body = body
		}
		resp, err := tc.Client.Do(req)
		if err == nil || attempt == 3 || !(errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)) {
			return resp, err
		}
		t.Logf("%s %s: connection dropped during a config change (%v); sending again", req.Method, req.URL.Path, err)
		time.Sleep(20 * time.Millisecond)
	}
}

// checkAgainstContract validates a response of the module with the
// validator's response validation. 405 is the one answer on an operation the
// document does not declare, so there is nothing to check it against.
func checkAgainstContract(t *testing.T, rq request, resp *http.Response, body []byte) {
	t.Helper()
	rt, ok := parseRoute(strings.SplitN(rq.path, "?", 2)[0])
	if !ok || rq.unchecked || resp.StatusCode == http.StatusMethodNotAllowed {
		return
	}
	c, err := loadContract("")
	if err != nil {
		t.Fatal(err)
	}
	vreq := httptest.NewRequest(rq.method, "http://localhost"+rt.path, nil)
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if ok, errs := c.validator.ValidateHttpResponse(vreq, resp); !ok {
		var msgs []string
		for _, e := range errs {
			msgs = append(msgs, e.Error())
		}
		t.Errorf("%s %s answered %d %s, which breaks the contract:\n%s", rq.method, rq.path, resp.StatusCode, body, strings.Join(msgs, "\n"))
	}
}

type sessionOut struct {
	ID         string         `json:"id"`
	Created    string         `json:"created"`
	Timeout    int64          `json:"timeout"`
	LastActive string         `json:"lastActive"`
	ExpiresAt  string         `json:"expiresAt"`
	Payload    map[string]any `json:"payload"`
}

func create(t *testing.T, tc *caddytest.Tester, app, token, body string) (sessionOut, reply) {
	t.Helper()
	r := call(t, tc, request{method: "POST", path: app + "/accounts/sessions", token: token, body: body})
	if r.status != http.StatusCreated {
		t.Fatalf("create: status %d, body %s", r.status, r.body)
	}
	var s sessionOut
	r.json(t, &s)
	return s, r
}
