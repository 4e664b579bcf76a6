package ownidsessions

import (
	"regexp"
	"testing"
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
		pattern, _, err := templatePattern(tt.template)
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
	if _, _, err := templatePattern("/pets/{id"); err == nil {
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
