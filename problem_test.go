package ownidsessions

import (
	"encoding/json"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

func TestProblemWrite(t *testing.T) {
	p := newProblem(kindInvalidRequest, "the request does not match the session contract").
		withHeader("X-Extra", "1")
	p.errors = []fieldError{{Location: "/payload", Message: "got array, want object"}}
	w := httptest.NewRecorder()
	w.Header().Set("ETag", `"7"`)
	w.Header().Set("Location", "/accounts/sessions/x")
	p.write(w)

	if w.Code != 400 {
		t.Fatalf("status %d", w.Code)
	}
	h := w.Header()
	if h.Get("Content-Type") != "application/problem+json" || h.Get("X-Extra") != "1" ||
		h.Get("Content-Length") != strconv.Itoa(w.Body.Len()) || h.Get("Cache-Control") != "no-store" {
		t.Errorf("headers %v", h)
	}
	if h.Get("ETag") != "" || h.Get("Location") != "" {
		t.Errorf("a problem carries a success header: %v", h)
	}
	var body map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	if body["type"] != "urn:ownid-sessions:problem:invalid-request" || body["status"] != 400.0 ||
		body["title"] == "" || body["detail"] != p.detail {
		t.Errorf("body %v", body)
	}
	errs, _ := body["errors"].([]any)
	if len(errs) != 1 || errs[0].(map[string]any)["location"] != "/payload" {
		t.Errorf("errors %v", body["errors"])
	}
}

// TestProblemKinds checks the table: every kind has its own type, a title,
// and a 4xx or 5xx status.
func TestProblemKinds(t *testing.T) {
	seen := map[string]bool{}
	for k := range problemKinds {
		kind := problemKind(k)
		info := problemKinds[k]
		if info.slug == "" || info.title == "" || info.status < 400 || info.status > 599 {
			t.Errorf("kind %d incomplete: %+v", k, info)
		}
		if seen[kind.typeURI()] {
			t.Errorf("type %s used twice", kind.typeURI())
		}
		seen[kind.typeURI()] = true
		w := httptest.NewRecorder()
		newProblem(kind, "detail").write(w)
		if w.Code != info.status || !strings.Contains(w.Body.String(), `"status":`+strconv.Itoa(info.status)) {
			t.Errorf("%s: wrote %d %s", info.slug, w.Code, w.Body)
		}
	}
}

func TestProblemOmitsEmptyErrors(t *testing.T) {
	w := httptest.NewRecorder()
	newProblem(kindNotFound, "no such session").write(w)
	if strings.Contains(w.Body.String(), "errors") {
		t.Errorf("empty errors list written: %s", w.Body)
	}
}
