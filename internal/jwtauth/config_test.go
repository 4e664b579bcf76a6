package jwtauth

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// TestConfigJSON: the field names are the handler's public JSON config, and
// durations read as Caddy's do.
func TestConfigJSON(t *testing.T) {
	size, leeway := 5, caddy.Duration(time.Second)
	full := Config{
		Algorithms: []string{"RS256"}, Secret: "s", Keys: []string{"k.pem"}, Issuers: []string{"i"},
		Audiences: []string{"a"}, Leeway: &leeway, JWKS: []string{"https://x/jwks"}, JWKSRefresh: 1,
		JWKSRefetchInterval: 1, JWKSWait: 1, CacheSize: &size, CacheTTL: 1, Require: map[string][]string{"c": {"v"}},
		Name: "n", Discover: "https://x", JWKSMaxBytes: 1, JWKSMaxKeys: 1,
	}
	raw, err := json.Marshal(full)
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]json.RawMessage
	json.Unmarshal(raw, &fields)
	var names []string
	for name := range fields {
		names = append(names, name)
	}
	slices.Sort(names)
	want := []string{"alg", "audience", "cache_size", "cache_ttl", "discover", "issuer", "jwks", "jwks_max_bytes",
		"jwks_max_keys", "jwks_refetch_interval", "jwks_refresh", "jwks_wait", "key", "leeway", "name", "require", "secret"}
	if !slices.Equal(names, want) {
		t.Errorf("JSON fields %v, want %v", names, want)
	}
	if raw, _ := json.Marshal(Config{}); string(raw) != "{}" {
		t.Errorf("empty config: %s", raw)
	}

	var cfg Config
	if err := json.Unmarshal([]byte(`{"alg":["HS256"],"leeway":"0s","jwks_refresh":"90m","cache_ttl":"1d","cache_size":0}`), &cfg); err != nil {
		t.Fatal(err)
	}
	if *cfg.Leeway != 0 || time.Duration(cfg.JWKSRefresh) != 90*time.Minute || time.Duration(cfg.CacheTTL) != 24*time.Hour || *cfg.CacheSize != 0 {
		t.Errorf("decoded %+v", cfg)
	}
}
