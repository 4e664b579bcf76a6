package ownidsessions

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	v3 "github.com/pb33f/libopenapi/datamodel/high/v3"
)

func mustCompileAnchored(pattern string) *regexp.Regexp {
	return regexp.MustCompile("^" + pattern + "$")
}

func TestTemplatePattern(t *testing.T) {
	tests := []struct {
		template string
		match    []string
		miss     []string
	}{
		{"/pets/{petId}", []string{"/pets/1", "/pets/abc"}, []string{"/pets", "/pets/", "/pets/1/2", "/petsx/1"}},
		{"/{tenant}/v1", []string{"/acme/v1"}, []string{"/v1", "/a/b/v1"}},
		{"/files/{name}.{ext}", []string{"/files/a.txt"}, []string{"/files/a"}},
		{"/a.b/c+d", []string{"/a.b/c+d"}, []string{"/aXb/c+d", "/a.b/cd"}},
	}
	for _, tt := range tests {
		pattern, _, _, err := templatePattern(tt.template)
		if err != nil {
			t.Fatalf("%s: %v", tt.template, err)
		}
		re := mustCompileAnchored(pattern)
		for _, p := range tt.match {
			if !re.MatchString(p) {
				t.Errorf("%s does not match %s", tt.template, p)
			}
		}
		for _, p := range tt.miss {
			if re.MatchString(p) {
				t.Errorf("%s matches %s", tt.template, p)
			}
		}
	}
	if _, _, _, err := templatePattern("/pets/{id"); err == nil {
		t.Error("unclosed brace accepted")
	}
}

func TestRouteUserSpec(t *testing.T) {
	c, err := loadContract("testdata/specs/pets.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.sessions {
		t.Fatal("the pets document is taken for the session API")
	}
	tests := []struct {
		path     string
		ok       bool
		app      string
		template string
	}{
		{"/acme/v1/pets", true, "/acme/v1", "/pets"},
		{"/acme/v1/pets/12", true, "/acme/v1", "/pets/{petId}"},
		{"/acme/v1/pets/mine", true, "/acme/v1", "/pets/mine"},
		{"/acme/v1/pets/12/toys", false, "", ""},
		{"/pets", false, "", ""},
		{"/acme/v2/pets", false, "", ""},
		{"/acme/v1", false, "", ""},
	}
	for _, tt := range tests {
		rt, ok := c.route(tt.path)
		if ok != tt.ok || rt.app != tt.app || rt.template != tt.template {
			t.Errorf("route(%s) = %+v, %v", tt.path, rt, ok)
		}
	}
}

func TestRouteSessionsDocument(t *testing.T) {
	c, _ := loadContract("")
	rt, ok := c.route("/some/app/accounts/sessions/xyz")
	if !ok || rt.app != "/some/app" || rt.template != itemPath || rt.sessionID != "xyz" {
		t.Errorf("embedded contract route: %+v %v", rt, ok)
	}
}

// TestEmbeddedDocumentIsComplete: every status the module can answer is
// declared on each operation where it can occur, and the session id
// parameter states the module's rule, with an example (tools such as Dredd
// need one to make requests).
func TestEmbeddedDocumentIsComplete(t *testing.T) {
	c, err := loadContract("")
	if err != nil {
		t.Fatal(err)
	}
	common := []string{"400", "401", "403", "404", "502", "503"}
	want := map[string][]string{
		"POST " + collectionPath: append([]string{"201", "408", "413", "415", "429"}, common...),
		"GET " + collectionPath:  append([]string{"200"}, common...),
		"GET " + itemPath:        append([]string{"200"}, common...),
		"PUT " + itemPath:        append([]string{"200", "408", "412", "413", "415"}, common...),
		"DELETE " + itemPath:     append([]string{"204", "412"}, common...),
	}
	for opKey, codes := range want {
		method, template, _ := strings.Cut(opKey, " ")
		op, ok := c.paths[template].ops[method]
		if !ok {
			t.Fatalf("%s is not in the document", opKey)
		}
		for _, code := range codes {
			d, ok := op.responses[code]
			if !ok {
				t.Errorf("%s does not declare %s", opKey, code)
				continue
			}
			if code >= "400" && !slices.Contains(d.mediaTypes, "application/problem+json") {
				t.Errorf("%s %s is not a problem", opKey, code)
			}
		}
	}
	for _, method := range []string{"GET", "PUT", "DELETE"} {
		var id *v3.Parameter
		for _, p := range c.paths[itemPath].ops[method].params {
			if p != nil && p.Name == "sessionId" {
				id = p
			}
		}
		if id == nil {
			t.Fatalf("%s %s: no sessionId parameter", method, itemPath)
		}
		s := id.Schema.Schema()
		if s.Pattern != "^[A-Za-z0-9._~-]{1,128}$" || s.MaxLength == nil || *s.MaxLength != maxSessionIDLength || id.Example == nil {
			t.Errorf("%s sessionId: pattern %q, maxLength %v, example %v", method, s.Pattern, s.MaxLength, id.Example)
		}
	}
}
