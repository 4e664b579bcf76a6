package jwtauth

import (
	"encoding/json"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

func TestClaimRules(t *testing.T) {
	var claims jwt.MapClaims
	json.Unmarshal([]byte(`{"sub":"a","role":"admin","roles":["ops","dev"],"level":3,"beta":true,"n":null,"obj":{"x":1}}`), &claims)
	tests := []struct {
		claim, value string
		want         bool
	}{
		{"role", "admin", true},
		{"role", "Admin", false},
		{"roles", "dev", true},
		{"roles", "admin", false},
		{"level", "3", true},
		{"level", "3.0", true},
		{"level", "4", false},
		{"level", "three", false},
		{"beta", "true", true},
		{"beta", "1", false},
		{"beta", "false", false},
		{"n", "null", false},
		{"obj", `{"x":1}`, false},
		{"missing", "x", false},
	}
	for _, tt := range tests {
		if got := (claimRule{tt.claim, tt.value}).satisfiedBy(claims); got != tt.want {
			t.Errorf("require %s %s: %v, want %v", tt.claim, tt.value, got, tt.want)
		}
	}
	id := newIdentity(claims)
	rules := rulesFrom(map[string][]string{"roles": {"ops", "dev"}, "role": {"admin"}})
	if p := checkRules(rules, id); p != nil {
		t.Errorf("all rules hold: %v", p)
	}
	rules = rulesFrom(map[string][]string{"roles": {"ops", "root"}})
	if p := checkRules(rules, id); p == nil || p.Status != 403 || p.Reason != "requirement" || p.Detail != `the token does not meet the requirement on claim "roles"` {
		t.Errorf("failing rule: %v", p)
	}
}

func TestPlaceholders(t *testing.T) {
	var claims jwt.MapClaims
	json.Unmarshal([]byte(`{"sub":"alice","email":"a@example.com","n":12,"f":1.5,"ok":false,"roles":["a","b"]}`), &claims)
	id := newIdentity(claims)
	for key, want := range map[string]string{
		"http.auth.user.id":    "alice",
		"http.auth.user.sub":   "alice",
		"http.auth.user.email": "a@example.com",
		"http.auth.user.n":     "12",
		"http.auth.user.f":     "1.5",
		"http.auth.user.ok":    "false",
		"http.auth.user.roles": `["a","b"]`,
	} {
		got, ok := id.Placeholder(key)
		if !ok || got != want {
			t.Errorf("%s = %v, %v; want %q", key, got, ok, want)
		}
	}
	for _, key := range []string{"http.auth.user.missing", "http.request.uri", "http.auth.userid"} {
		if _, ok := id.Placeholder(key); ok {
			t.Errorf("%s resolved", key)
		}
	}
}
