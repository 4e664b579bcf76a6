package ownidsessions

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	verrors "github.com/pb33f/libopenapi-validator/errors"
)

func TestEmbeddedContract(t *testing.T) {
	c, err := loadContract("")
	if err != nil {
		t.Fatal(err)
	}
	if ok, errs := c.validator.ValidateDocument(); !ok {
		for _, e := range errs {
			t.Error(e)
		}
	}
	declares := func(template, method string) bool {
		op, ok := c.paths[template].ops[method]
		return ok && op.hasBody && len(op.bodyTypes) == 1 && op.bodyTypes[0] == "application/json"
	}
	if a := c.paths[collectionPath]; a.allow != "DELETE, GET, POST" || !declares(collectionPath, "POST") || declares(collectionPath, "GET") {
		t.Errorf("collection: %+v", a)
	}
	if a := c.paths[itemPath]; a.allow != "DELETE, GET, PUT" || !declares(itemPath, "PUT") || declares(itemPath, "DELETE") {
		t.Errorf("item: %+v", a)
	}
	if !c.sessions {
		t.Error("the embedded contract is not recognised as the session API")
	}
	// The seed's operation is there as OwnID has it.
	if !strings.Contains(string(embeddedContract), "operationId: updateSession") ||
		!strings.Contains(string(embeddedContract), "summary: Update an existing session") {
		t.Error("the seed's updateSession operation is missing")
	}
}

func TestParseContractErrors(t *testing.T) {
	if _, err := parseContract([]byte("not: [an openapi")); err == nil {
		t.Error("broken YAML accepted")
	}
	if _, err := loadContract("testdata/specs/broken.yaml"); err == nil || !strings.HasPrefix(err.Error(), "spec: testdata/specs/broken.yaml: ") {
		t.Errorf("broken spec file: %v", err)
	}
	if _, err := parseContract([]byte("swagger: '2.0'\ninfo: {title: x, version: '1'}\npaths: {}\n")); err == nil {
		t.Error("a Swagger 2 document was accepted")
	}
	if _, err := parseContract([]byte("openapi: 3.1.0\ninfo: {title: x, version: '1'}\npaths: {}\n")); err == nil || !strings.Contains(err.Error(), "no paths") {
		t.Errorf("a document without paths: %v", err)
	}
	other := "openapi: 3.1.0\ninfo: {title: x, version: '1'}\npaths:\n  /pets:\n    get:\n      responses:\n        '200': {description: ok}\n"
	if c, err := parseContract([]byte(other)); err != nil || c.sessions {
		t.Errorf("a document of another API: %v, sessions=%v", err, c != nil && c.sessions)
	}
}

func TestValidateRequest(t *testing.T) {
	c, _ := loadContract("")
	tests := []struct {
		method, path, body string
		locations          []string // nil: valid
	}{
		{"PUT", "/accounts/sessions/abc", `{"payload":{"a":1}}`, nil},
		{"PUT", "/accounts/sessions/abc", `{}`, nil},
		{"PUT", "/accounts/sessions/abc", `{"payload":"x"}`, []string{"/payload"}},
		{"PUT", "/accounts/sessions/abc", `[]`, []string{""}},
		{"POST", "/accounts/sessions", `{"payload":{},"timeout":30}`, nil},
		{"POST", "/accounts/sessions", `{"payload":{},"timeout":-1}`, []string{"/timeout"}},
		{"POST", "/accounts/sessions", `{"payload":{},"timeout":"30"}`, []string{"/timeout"}},
		{"GET", "/accounts/sessions", ``, nil},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(tt.method, "/my-app"+tt.path, nil)
		r.Header.Set("Content-Type", "application/json")
		var body *requestBody
		if tt.body != "" {
			doc, p := parseJSON([]byte(tt.body))
			if p != nil {
				t.Fatal(p)
			}
			body = &requestBody{raw: []byte(tt.body), doc: doc}
		}
		rt, _ := c.classify("/my-app"+tt.path, tt.method)
		p := c.validateRequest(r, rt, body, false)
		if tt.locations == nil {
			if p != nil {
				t.Errorf("%s %s: %v %+v", tt.method, tt.body, p, p.errors)
			}
			continue
		}
		if p == nil || p.kind != kindInvalidRequest {
			t.Errorf("%s %s: %v, want invalid-request", tt.method, tt.body, p)
			continue
		}
		for _, loc := range tt.locations {
			found := false
			for _, e := range p.errors {
				found = found || e.Location == loc && e.Message != ""
			}
			if !found {
				t.Errorf("%s %s: errors %+v lack %q", tt.method, tt.body, p.errors, loc)
			}
		}
	}
}

func TestFieldErrors(t *testing.T) {
	got := fieldErrors([]*verrors.ValidationError{
		{Message: "generic", Reason: "query parameter 'x' is missing", ParameterName: "x"},
		{Message: "body failed", SchemaValidationErrors: []*verrors.SchemaValidationFailure{
			{Reason: "got string, want object", InstancePath: []string{"payload"}},
			{Reason: "bad", InstancePath: []string{"a/b", "c~d"}},
		}},
	})
	want := []fieldError{
		{"x", "query parameter 'x' is missing"},
		{"/payload", "got string, want object"},
		{"/a~1b/c~0d", "bad"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("%d: %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestCheckMediaType(t *testing.T) {
	for ct, ok := range map[string]bool{
		"application/json":                  true,
		"application/json; charset=utf-8":   true,
		"Application/JSON":                  true,
		"application/merge-patch+json":      true,
		"text/plain":                        false,
		"application/jsonx":                 false,
		"":                                  false,
		"application/x-www-form-urlencoded": false,
	} {
		r := httptest.NewRequest("PUT", "/", nil)
		r.Header.Set("Content-Type", ct)
		if _, p := checkMediaType(r, []string{"application/json"}); (p == nil) != ok {
			t.Errorf("%q: accepted=%v, want %v", ct, p == nil, ok)
		}
	}
}

// BenchmarkValidateRequestPut: parsing a PUT body and checking it against
// the contract.
func BenchmarkValidateRequestPut(b *testing.B) {
	c, _ := loadContract("")
	r := httptest.NewRequest("PUT", "/app/accounts/sessions/abc", nil)
	r.Header.Set("Content-Type", "application/json")
	raw := []byte(`{"payload":{"preferences":{"theme":"dark","resolution":"wide"}}}`)
	rt, _ := c.classify("/app/accounts/sessions/abc", "PUT")
	b.ReportAllocs()
	for b.Loop() {
		doc, p := parseJSON(raw)
		if p != nil {
			b.Fatal(p)
		}
		if p := c.validateRequest(r, rt, &requestBody{raw, doc}, false); p != nil {
			b.Fatal(p)
		}
	}
}

// BenchmarkValidateResponse: checking one backend answer to GET
// /accounts/sessions/{id}, valid and invalid, as forward mode does.
func BenchmarkValidateResponse(b *testing.B) {
	c, _ := loadContract("")
	req := httptest.NewRequest("GET", "/app/accounts/sessions/abc", nil)
	rt, _ := c.classify(req.URL.Path, req.Method)
	for name, body := range map[string]string{
		"valid":   validSession,
		"invalid": `{"id":"abc","created":12,"timeout":"x","payload":"x"}`,
	} {
		b.Run(name, func(b *testing.B) {
			data := []byte(body)
			resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": []string{"application/json"}}}
			b.ReportAllocs()
			for b.Loop() {
				errs := c.checkResponse(req, rt, resp, data)
				if (len(errs) == 0) != (name == "valid") {
					b.Fatalf("%s answer: %v", name, errs)
				}
			}
		})
	}
}
