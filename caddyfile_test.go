package ownidsessions

import (
	"bytes"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddytest"
)

var updateAdapt = flag.Bool("update-adapt", false, "rewrite the JSON half of testdata/caddyfile/*.caddyfiletest")

const adaptSeparator = "----------"

// TestCaddyfileAdapt adapts every testdata/caddyfile/*.caddyfiletest (a
// Caddyfile, a line of dashes, the JSON it must adapt to) as Caddy's own
// tests do.
func TestCaddyfileAdapt(t *testing.T) {
	files, err := filepath.Glob("testdata/caddyfile/*.caddyfiletest")
	if err != nil || len(files) == 0 {
		t.Fatalf("no adapt tests found: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			input, expected, found := strings.Cut(string(data), adaptSeparator+"\n")
			if *updateAdapt {
				out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(input), nil)
				if err != nil {
					t.Fatal(err)
				}
				var pretty bytes.Buffer
				if err := json.Indent(&pretty, out, "", "\t"); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(file, []byte(input+adaptSeparator+"\n"+pretty.String()+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if !found {
				t.Fatalf("%s has no %q line", file, adaptSeparator)
			}
			caddytest.AssertAdapt(t, input, "caddyfile", strings.TrimSpace(expected))
		})
	}
}

// TestExampleAdapts keeps Caddyfile.example loadable by the adapter.
func TestExampleAdapts(t *testing.T) {
	data, err := os.ReadFile("Caddyfile.example")
	if err != nil {
		t.Fatal(err)
	}
	out, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt(data, map[string]any{"filename": "Caddyfile.example"})
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) > 0 {
		t.Errorf("warnings: %v", warnings)
	}
	if !bytes.Contains(out, []byte(`"handler":"ownid_sessions"`)) {
		t.Errorf("Caddyfile.example does not use ownid_sessions: %s", out)
	}
}

func TestUnmarshalCaddyfileErrors(t *testing.T) {
	tests := map[string]struct {
		input string
		want  string
	}{
		"argument on directive":   {`ownid_sessions foo`, "wrong argument count"},
		"unknown subdirective":    {"ownid_sessions {\n frobnicate on\n}", `unrecognized subdirective "frobnicate"`},
		"bad response_buffer":     {"ownid_sessions {\n response_buffer big\n}", `response_buffer: invalid size "big"`},
		"spec without file":       {"ownid_sessions {\n spec\n}", "wrong argument count"},
		"mode without value":      {"ownid_sessions {\n mode\n}", "wrong argument count"},
		"bad size":                {"ownid_sessions {\n max_body lots\n}", `max_body: invalid size "lots"`},
		"zero size":               {"ownid_sessions {\n max_body 0\n}", `max_body: invalid size "0"`},
		"bad timeout":             {"ownid_sessions {\n session_timeout soon\n}", `session_timeout: invalid duration "soon"`},
		"bad max_sessions":        {"ownid_sessions {\n max_sessions -1\n}", `max_sessions: want a positive integer`},
		"extra argument":          {"ownid_sessions {\n max_sessions 1 2\n}", `max_sessions: unexpected argument "2"`},
		"unknown store":           {"ownid_sessions {\n store floppy\n}", `store:`},
		"store memory extra":      {"ownid_sessions {\n store memory a b\n}", "wrong argument count"},
		"store memory sub":        {"ownid_sessions {\n store memory {\n  size 1\n }\n}", `store memory: unrecognized subdirective "size"`},
		"strict argument":         {"ownid_sessions {\n strict yes\n}", `strict: unexpected argument "yes"`},
		"apps without app":        {"ownid_sessions {\n apps\n}", "apps: name at least one app"},
		"app_claim without":       {"ownid_sessions {\n app_claim\n}", "wrong argument count"},
		"app_claim two":           {"ownid_sessions {\n app_claim a b\n}", `app_claim: unexpected argument "b"`},
		"app_claim empty":         {"ownid_sessions {\n app_claim \"\"\n}", `app_claim: takes a value, not an empty string`},
		"mode empty":              {"ownid_sessions {\n mode \"\"\n}", `mode: takes a value, not an empty string`},
		"jwt session_claim empty": {"ownid_sessions {\n jwt {\n  alg HS256\n  session_claim \"\"\n }\n}", `jwt session_claim: takes a value, not an empty string`},
		"jwt issuer empty":        {"ownid_sessions {\n jwt a {\n  issuer https://a \"\"\n }\n}", `jwt issuer: takes a value, not an empty string`},
		"jwt require empty":       {"ownid_sessions {\n jwt {\n  require sub \"\"\n }\n}", `jwt require: takes a value, not an empty string`},
		"token_from empty name":   {"ownid_sessions {\n token_from header \"\"\n}", `token_from: takes a value, not an empty string`},
		"ignore_scheme empty":     {"ownid_sessions {\n ignore_scheme a \"\"\n}", `ignore_scheme: takes a value, not an empty string`},
		"store memory empty name": {"ownid_sessions {\n store memory \"\"\n}", `store: takes a value, not an empty string`},
		"store redis empty":       {"ownid_sessions {\n store redis redis://x {\n  key_prefix \"\"\n }\n}", `store key_prefix: takes a value, not an empty string`},
		"store memory max_bytes":  {"ownid_sessions {\n store memory {\n  max_bytes lots\n }\n}", `max_bytes: invalid size "lots"`},
		"store redis no url":      {"ownid_sessions {\n store redis\n}", "store redis: a URL is required"},
		"store redis sub":         {"ownid_sessions {\n store redis redis://x {\n  pool 1\n }\n}", `store redis: unrecognized subdirective "pool"`},
		"store redis timeout":     {"ownid_sessions {\n store redis redis://x {\n  timeout soon\n }\n}", `store redis timeout: invalid duration "soon"`},
		"jwt unknown":             {"ownid_sessions {\n jwt {\n  kid x\n }\n}", `jwt: unrecognized subdirective "kid"`},
		"jwt empty alg":           {"ownid_sessions {\n jwt {\n  alg\n }\n}", `jwt alg: needs a value`},
		"jwt two secrets":         {"ownid_sessions {\n jwt {\n  secret a b\n }\n}", `jwt secret: takes one value`},
		"jwt bad leeway":          {"ownid_sessions {\n jwt {\n  leeway -1s\n }\n}", `jwt leeway: invalid duration`},
		"jwt two names":           {"ownid_sessions {\n jwt a b\n}", `jwt: takes at most a provider name, got "b" too`},
		"jwt two unnamed":         {"ownid_sessions {\n jwt {\n  alg HS256\n }\n jwt {\n  alg HS256\n }\n}", "jwt: with several jwt blocks, each needs a name"},
		"jwt same name":           {"ownid_sessions {\n jwt a {\n  alg HS256\n }\n jwt a {\n  alg HS256\n }\n}", "jwt a: two jwt blocks have this name"},
		"jwt two discover":        {"ownid_sessions {\n jwt {\n  discover https://a https://b\n }\n}", "jwt discover: takes one issuer URL"},
		"jwt bad max bytes":       {"ownid_sessions {\n jwt {\n  jwks_max_bytes lots\n }\n}", `jwt jwks_max_bytes: invalid size "lots"`},
		"jwt bad max keys":        {"ownid_sessions {\n jwt {\n  jwks_max_keys 0\n }\n}", `jwt jwks_max_keys: want a positive number of keys, got "0"`},
		"token_from empty":        {"ownid_sessions {\n token_from\n}", "token_from: want header [<name>], cookie <name> or query <name>"},
		"token_from body":         {"ownid_sessions {\n token_from body x\n}", `token_from: unknown source "body"`},
		"token_from cookie":       {"ownid_sessions {\n token_from cookie\n}", "token_from cookie: needs the cookie's name"},
		"token_from query":        {"ownid_sessions {\n token_from query\n}", "token_from query: needs the parameter's name"},
		"token_from two names":    {"ownid_sessions {\n token_from header a b\n}", "token_from header: takes one name"},
		"jwt require one arg":     {"ownid_sessions {\n jwt {\n  require role\n }\n}", "jwt require: takes a claim name and a value"},
		"jwt require three":       {"ownid_sessions {\n jwt {\n  require role a b\n }\n}", "jwt require: takes a claim name and a value"},
		"jwt bad cache_size":      {"ownid_sessions {\n jwt {\n  cache_size lots\n }\n}", "jwt cache_size: want a whole number"},
		"jwt zero jwks_wait":      {"ownid_sessions {\n jwt {\n  jwks_wait 0s\n }\n}", `jwt jwks_wait: invalid duration "0s"`},
		"jwt bad refresh":         {"ownid_sessions {\n jwt {\n  jwks_refresh often\n }\n}", `jwt jwks_refresh: invalid duration "often"`},
		"jwt empty jwks":          {"ownid_sessions {\n jwt {\n  jwks\n }\n}", "jwt jwks: needs a value"},
	}
	for name, tt := range tests {
		var h Handler
		err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tt.input))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want it to contain %q", name, err, tt.want)
		}
	}
}

func TestUnmarshalCaddyfile(t *testing.T) {
	var h Handler
	err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(`ownid_sessions {
		max_body 2KiB
		max_sessions 3
		session_timeout 1h
		jwt {
			alg HS256
			alg HS384
			secret {env.S}
			issuer a b
			audience c
			leeway 1s
		}
	}`))
	if err != nil {
		t.Fatal(err)
	}
	if h.MaxBody != 2048 || h.MaxSessions != 3 || time.Duration(h.SessionTimeout) != time.Hour ||
		strings.Join(h.JWT.Algorithms, " ") != "HS256 HS384" || h.JWT.Secret != "{env.S}" ||
		len(h.JWT.Issuers) != 2 || h.JWT.Audiences[0] != "c" || h.JWT.Leeway == nil || time.Duration(*h.JWT.Leeway) != time.Second {
		t.Fatalf("parsed %+v %+v", h, h.JWT)
	}
}

// TestLoadErrors loads configs that cannot work into the real Caddy: each
// fails at load with a message that names the subdirective.
func TestLoadErrors(t *testing.T) {
	site := func(body string) string {
		return `{
` + testGlobals + `
}
http://localhost:9080 {
	ownid_sessions {
` + body + `
	}
}`
	}
	wrongIssuer := "https://impostor.example"
	op := discoveryServer(t, &wrongIssuer, "http://127.0.0.1:1/jwks")
	tests := map[string]struct {
		body string
		want string
	}{
		"no jwt":                     {``, "jwt: a jwt block"},
		"discovery issuer":           {"jwt op {\n alg RS256\n discover " + op.URL + "\n}", `jwt op discover: ` + op.URL + `/.well-known/openid-configuration names the issuer \"https://impostor.example\", not the configured \"` + op.URL + `\"`},
		"discovery down":             {"jwt {\n alg RS256\n discover http://127.0.0.1:1\n}", "jwt discover: http://127.0.0.1:1/.well-known/openid-configuration: cannot be fetched"},
		"shared issuer":              {"jwt a {\n alg HS256\n secret {env.OWNID_TEST_SECRET}\n issuer https://x\n}\njwt b {\n alg HS256\n secret {env.OWNID_TEST_SECRET}\n issuer https://x\n}", `jwt b issuer: \"https://x\" is also an issuer of provider a`},
		"two catch-alls":             {"jwt a {\n alg HS256\n secret {env.OWNID_TEST_SECRET}\n}\njwt b {\n alg HS256\n secret {env.OWNID_TEST_SECRET}\n}", "jwt b issuer: providers a and b both list no issuer"},
		"named bad alg":              {"jwt a {\n alg XS1\n secret {env.OWNID_TEST_SECRET}\n}", `jwt a alg: unknown algorithm \"XS1\"`},
		"no key source":              {"jwt {\n alg HS256\n}", "jwt: no key source"},
		"unknown alg":                {"jwt {\n alg XS256\n secret {env.OWNID_TEST_SECRET}\n}", `jwt alg: unknown algorithm \"XS256\"`},
		"short secret":               {"jwt {\n alg HS256\n secret tooshort\n}", "jwt secret: must be at least 32 bytes"},
		"bad size":                   {"max_body huge\njwt {\n alg HS256\n secret {env.OWNID_TEST_SECRET}\n}", `max_body: invalid size \"huge\"`},
		"missing key":                {"jwt {\n alg RS256\n key /nonexistent/key.pem\n}", "jwt key: open /nonexistent/key.pem"},
		"huge timeout":               {"session_timeout 9000h\njwt {\n alg HS256\n secret {env.OWNID_TEST_SECRET}\n}", "session_timeout: must be between"},
		"unknown store":              {"store floppy\njwt {\n alg HS256\n secret {env.OWNID_TEST_SECRET}\n}", "store:"},
		"alg and no key":             {"jwt {\n alg HS256 ES256\n secret {env.OWNID_TEST_SECRET}\n}", "jwt alg: ES256 needs an EC P-256 key"},
		"forward with store":         {"mode forward\nstore memory\njwt {\n alg HS256\n secret {env.OWNID_TEST_SECRET}\n}", "store: forward mode keeps no sessions"},
		"missing spec":               {"spec /nonexistent/spec.yaml\njwt {\n alg HS256\n secret {env.OWNID_TEST_SECRET}\n}", "spec: open /nonexistent/spec.yaml"},
		"serve other api":            {"spec testdata/specs/pets.yaml\njwt {\n alg HS256\n secret {env.OWNID_TEST_SECRET}\n}", "which serve mode answers"},
		"broken spec":                {"mode forward\nspec testdata/specs/broken.yaml\njwt {\n alg HS256\n secret {env.OWNID_TEST_SECRET}\n}", "spec: testdata/specs/broken.yaml:"},
		"unknown mode":               {"mode proxy\njwt {\n alg HS256\n secret {env.OWNID_TEST_SECRET}\n}", `mode: unknown mode \"proxy\"`},
		"unknown validation":         {"validate_responses strict\njwt {\n alg HS256\n secret {env.OWNID_TEST_SECRET}\n}", `validate_responses: unknown value \"strict\"`},
		"undescribed value":          {"undescribed maybe\njwt {\n alg HS256\n secret {env.OWNID_TEST_SECRET}\n}", `undescribed: unknown value \"maybe\"`},
		"unusable scheme":            {"mode forward\nspec testdata/specs/scoped.yaml\njwt {\n alg HS256\n secret {env.OWNID_TEST_SECRET}\n}", `security scheme \"Key\" is of type apiKey`},
		"scheme of no provider":      {"mode forward\nspec testdata/specs/scoped.yaml\nignore_scheme Key\nscheme OAuth nobody\njwt {\n alg HS256\n secret {env.OWNID_TEST_SECRET}\n}", `scheme OAuth: no token provider is named \"nobody\"`},
		"scheme not in the document": {"mode forward\nspec testdata/specs/scoped.yaml\nignore_scheme Key\nscheme Nope x\njwt {\n alg HS256\n secret {env.OWNID_TEST_SECRET}\n}", `scheme: \"Nope\" is not a security scheme`},
		"bad preflight":              {"preflight maybe\njwt {\n alg HS256\n secret {env.OWNID_TEST_SECRET}\n}", `preflight: unknown value \"maybe\"`},
		"bad resource_metadata":      {"resource_metadata not-a-url\njwt {\n alg HS256\n secret {env.OWNID_TEST_SECRET}\n}", `resource_metadata: \"not-a-url\" is not a resource identifier`},
		"bad app":                    {"apps my-app /\njwt {\n alg HS256\n secret {env.OWNID_TEST_SECRET}\n}", `apps: \"/\" is not an app a canonical path can spell`},
		"app with a space":           {"apps \"a b\" my-app\njwt {\n alg HS256\n secret {env.OWNID_TEST_SECRET}\n}", `apps: \"a b\" is not an app a canonical path can spell`},
		"app with an empty segment":  {"apps a//b\njwt {\n alg HS256\n secret {env.OWNID_TEST_SECRET}\n}", `apps: \"a//b\" is not an app`},
		"app with a dot segment":     {"apps a/../b\njwt {\n alg HS256\n secret {env.OWNID_TEST_SECRET}\n}", `apps: \"a/../b\" is not an app`},
		"app with an escape":         {"apps a%2Fb\njwt {\n alg HS256\n secret {env.OWNID_TEST_SECRET}\n}", `apps: \"a%2Fb\" is not an app`},
		"forward store unused":       {"mode forward\nstore memory\njwt {\n alg HS256\n secret {env.OWNID_TEST_SECRET}\n}", "which no jwt block sets"},
		"forward binding no store":   {"mode forward\njwt {\n alg HS256\n secret {env.OWNID_TEST_SECRET}\n session_claim sid\n}", "jwt session_claim: in forward mode, name the store"},
		"check ttl without claim":    {"jwt {\n alg HS256\n secret {env.OWNID_TEST_SECRET}\n session_check_ttl 5s\n}", "jwt session_check_ttl: needs session_claim"},
		"named check ttl":            {"jwt a {\n alg HS256\n secret {env.OWNID_TEST_SECRET}\n session_check_ttl 5s\n}", "jwt a session_check_ttl: needs session_claim"},
		"bad session claim":          {"jwt {\n alg HS256\n secret {env.OWNID_TEST_SECRET}\n session_claim \" sid\"\n}", `jwt session_claim: \" sid\" is not a claim name`},
		"short cursor secret":        {"cursor_secret short\njwt {\n alg HS256\n secret {env.OWNID_TEST_SECRET}\n}", "cursor_secret: must be at least 32 bytes, got 5"},
		"huge lifetime":              {"max_lifetime 100000h\njwt {\n alg HS256\n secret {env.OWNID_TEST_SECRET}\n}", "max_lifetime: must be between 1s and"},
		"tiny lifetime":              {"max_lifetime 10ms\njwt {\n alg HS256\n secret {env.OWNID_TEST_SECRET}\n}", "max_lifetime: must be between 1s and"},
		"plain http jwks":            {"jwt {\n alg RS256\n jwks http://issuer.example/jwks\n}", "jwt jwks: http://issuer.example/jwks: plain http is only allowed to a loopback host"},
	}
	// Caddy runs, with a config that loads, before the ones that must not.
	caddytest.NewTester(t).InitServer(site("jwt {\n alg HS256\n secret {env.OWNID_TEST_SECRET}\n}"), "caddyfile")
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			assertLoadError(t, site(tt.body), "caddyfile", tt.want)
		})
	}
}

// assertLoadError posts config to the admin endpoint of the running test
// Caddy and wants it refused with an error that contains want. It is
// caddytest.AssertLoadError on connections of its own: after a refused
// load Caddy puts its admin endpoint back and shuts the previous one down,
// and a POST on a kept-alive connection to that one reads EOF (seen in CI).
// A load that fails in transport is sent again: a refused load changes
// nothing.
func assertLoadError(t *testing.T, config, adapter, want string) {
	t.Helper()
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	var lastErr error
	for range 5 {
		resp, err := client.Post("http://localhost:2999/load", "text/"+adapter, strings.NewReader(config))
		if err != nil {
			lastErr = err
			time.Sleep(100 * time.Millisecond)
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatalf("the config loaded; want an error containing %q", want)
		}
		if !strings.Contains(string(body), want) {
			t.Fatalf("expected error %q but got %s", want, body)
		}
		return
	}
	t.Fatalf("the admin endpoint did not answer: %v", lastErr)
}

// TestStoreNamespace: the store subdirective, the JSON field's namespace
// and the store modules this package brings in all name one namespace,
// outside http.handlers (Caddy's namespace for HTTP handlers).
func TestStoreNamespace(t *testing.T) {
	field, _ := reflect.TypeFor[Handler]().FieldByName("StoreRaw")
	if tag := field.Tag.Get("caddy"); !strings.Contains(tag, "namespace="+storeNamespace+" ") {
		t.Errorf("StoreRaw's namespace (%s) is not %s", tag, storeNamespace)
	}
	if strings.HasPrefix(storeNamespace, "http.handlers.") {
		t.Errorf("%s is in Caddy's namespace of HTTP handlers", storeNamespace)
	}
	var names []string
	for _, m := range caddy.GetModules(storeNamespace) {
		names = append(names, m.ID.Name())
	}
	if strings.Join(names, " ") != "memory redis" {
		t.Errorf("store modules registered: %v, want memory and redis", names)
	}
}
