package ownidsessions

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddytest"
)

// scrape reads Caddy's metrics endpoint on the admin API: series → value.
func scrape(t *testing.T) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://localhost:2999/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "caddy_ownid_sessions_") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, _ := strconv.ParseFloat(line[i+1:], 64)
		out[line[:i]] = v
	}
	return out
}

// TestMetricsMoveWithTraffic: each metric on Caddy's registry moves with
// the traffic that should move it.
func TestMetricsMoveWithTraffic(t *testing.T) {
	jwksSrv := newJWKSServer(t)
	jwksSrv.serve(t)
	tc := caddytest.NewTester(t)
	tc.InitServer(siteConfig("grace_period 1ns", fmt.Sprintf(`
		jwt {
			alg HS256 RS256
			secret {env.OWNID_TEST_SECRET}
			jwks %s
		}
		store memory metrics-test`, jwksSrv.URL)), "caddyfile")
	before := scrape(t)
	tok := tokenFor(t, "metrics")
	create(t, tc, "/m", tok, `{"payload":{}}`)
	create(t, tc, "/m", tok, `{"payload":{}}`)
	call(t, tc, request{method: "GET", path: "/m/accounts/sessions/nosuch", token: tok})
	call(t, tc, request{method: "GET", path: "/m/accounts/sessions"})
	expired := claimsFor("metrics")
	expired["exp"] = testNow().Add(-time.Hour).Unix()
	call(t, tc, request{method: "GET", path: "/m/accounts/sessions", token: sign(t, "HS256", expired)})
	after := scrape(t)

	delta := func(series string) float64 { return after[series] - before[series] }
	for series, want := range map[string]float64{
		`caddy_ownid_sessions_requests_total{operation="createSession",problem="",status_class="2xx"}`:               2,
		`caddy_ownid_sessions_requests_total{operation="getSession",problem="session-not-found",status_class="4xx"}`: 1,
		`caddy_ownid_sessions_requests_total{operation="listSessions",problem="missing-token",status_class="4xx"}`:   1,
		`caddy_ownid_sessions_requests_total{operation="listSessions",problem="invalid-token",status_class="4xx"}`:   1,
		`caddy_ownid_sessions_token_failures_total{reason="missing"}`:                                                1,
		`caddy_ownid_sessions_token_failures_total{reason="expired"}`:                                                1,
		`caddy_ownid_sessions_token_cache_lookups_total{result="miss"}`:                                              2, // tok, then the expired one
		`caddy_ownid_sessions_token_cache_lookups_total{result="hit"}`:                                               2,
		`caddy_ownid_sessions_handler_duration_seconds_count{operation="createSession"}`:                             2,
	} {
		if got := delta(series); got != want {
			t.Errorf("%s moved by %v, want %v", series, got, want)
		}
	}
	if got := after[`caddy_ownid_sessions_live_sessions{store="metrics-test"}`]; got != 2 {
		t.Errorf("live_sessions{store=metrics-test} = %v, want 2", got)
	}
	if after[`caddy_ownid_sessions_jwks_fetches_total{result="ok"}`] < 1 {
		t.Errorf("no JWKS fetch counted")
	}
	jwksSrv.fail(true)
	tc.InitServer(siteConfig("grace_period 1ns", fmt.Sprintf(`
		jwt {
			alg RS256
			jwks %s
		}`, jwksSrv.URL)), "caddyfile")
	if got := scrape(t)[`caddy_ownid_sessions_jwks_fetches_total{result="error"}`] - after[`caddy_ownid_sessions_jwks_fetches_total{result="error"}`]; got < 1 {
		t.Errorf("a failed JWKS fetch was not counted")
	}
}

// TestAdminEndpoint: GET /ownid_sessions/ on the admin API reports each
// handler's store and JWKS state and the memory stores' sessions per app,
// with no secret in it.
func TestAdminEndpoint(t *testing.T) {
	jwksSrv := newJWKSServer(t)
	jwksSrv.serve(t, testJWK{kid: "k", key: &testKeys.rsa.PublicKey})
	tc := caddytest.NewTester(t)
	tc.InitServer(siteConfig("grace_period 1ns", fmt.Sprintf(`
		jwt {
			alg HS256 RS256
			secret {env.OWNID_TEST_SECRET}
			jwks %s
		}
		store memory admin-test`, jwksSrv.URL+"/jwks?token=querysecret")), "caddyfile")
	create(t, tc, "/app-one", tokenFor(t, "a1"), `{"payload":{}}`)
	create(t, tc, "/app-one", tokenFor(t, "a2"), `{"payload":{}}`)
	create(t, tc, "/app-two", tokenFor(t, "a1"), `{"payload":{}}`)

	resp, err := http.Get("http://localhost:2999/ownid_sessions/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var status adminStatus
	if resp.StatusCode != 200 || json.Unmarshal(body, &status) != nil {
		t.Fatalf("admin endpoint: %d %s", resp.StatusCode, body)
	}
	store := status.MemoryStores["admin-test"]
	if store.Apps["/app-one"] != 2 || store.Apps["/app-two"] != 1 || store.LiveSessions != 3 {
		t.Errorf("memory store: %+v", store)
	}
	found := false
	for _, h := range status.Handlers {
		if h.Store == "memory:admin-test" {
			found = true
			if len(h.JWKS) != 1 || !h.JWKS[0].Loaded || h.JWKS[0].Keys != 1 || h.JWKS[0].LastFetch == "" || h.JWKS[0].LastError != "" {
				t.Errorf("JWKS state %+v", h.JWKS)
			}
		}
	}
	if !found {
		t.Errorf("the handler is not listed: %s", body)
	}
	for _, secret := range []string{testSecret, "querysecret"} {
		if bytes.Contains(body, []byte(secret)) {
			t.Errorf("the admin endpoint shows a secret: %s", body)
		}
	}
}

// TestLogsNeverLeak runs traffic that is rejected, accepted and forwarded
// with Caddy logging at DEBUG to a file, then scans the file: no token, no
// key, no payload value, while the rejections are there.
func TestLogsNeverLeak(t *testing.T) {
	logFile := filepath.Join(t.TempDir(), "caddy.log")
	be := newBackend(t)
	be.answer("GET", "/fwd/accounts/sessions/x", answer{200, "application/json", `{"created":12,"payload":{"leak":"UPSTREAM-PAYLOAD-MARKER"}}`})
	tc := caddytest.NewTester(t)
	tc.InitServer(fmt.Sprintf(`
{
	admin localhost:2999
	http_port 9080
	https_port 9443
	grace_period 1ns
	default_bind 127.0.0.1
	skip_install_trust
	log {
		output file %s
		level DEBUG
	}
}
http://localhost:9080 {
	route /fwd/* {
		ownid_sessions {
			mode forward
			validate_responses enforce
			jwt {
				alg HS256
				secret {env.OWNID_TEST_SECRET}
			}
		}
		reverse_proxy %s
	}
	ownid_sessions {
		jwt {
			alg HS256
			secret {env.OWNID_TEST_SECRET}
			require role admin
		}
		store memory logs-test
	}
}`, logFile, strings.TrimPrefix(be.URL, "http://")), "caddyfile")

	claims := claimsFor("log-user")
	claims["role"] = "admin"
	tok := sign(t, "HS256", claims)
	expired := claimsFor("log-user")
	expired["exp"] = testNow().Add(-time.Hour).Unix()
	expiredTok := sign(t, "HS256", expired)
	noRole := sign(t, "HS256", claimsFor("log-user"))
	tokens := []string{tok, expiredTok, noRole, tok + "tampered"}
	s, _ := create(t, tc, "/l", tok, `{"payload":{"secret":"PAYLOAD-MARKER-1"}}`)
	for _, rq := range []request{
		{method: "PUT", path: "/l/accounts/sessions/" + s.ID, token: tok, body: `{"payload":["PAYLOAD-MARKER-2"]}`},
		{method: "PUT", path: "/l/accounts/sessions/" + s.ID, token: tok, body: `{"payload":{"x":"PAYLOAD-MARKER-3"}`},
		{method: "GET", path: "/l/accounts/sessions", token: expiredTok},
		{method: "GET", path: "/l/accounts/sessions", token: noRole},
		{method: "GET", path: "/l/accounts/sessions", token: tok + "tampered"},
		{method: "GET", path: "/fwd/accounts/sessions/x", token: tok},
	} {
		rq.unchecked = true
		call(t, tc, rq)
	}
	tc.InitServer(siteConfig("grace_period 1ns", `
		jwt {
			alg HS256
			secret {env.OWNID_TEST_SECRET}
		}`), "caddyfile") // flushes and closes the log file
	logs, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"msg":"request rejected"`, `"problem":"invalid-token"`, `"problem":"claim-requirement-failed"`, `"msg":"upstream answer breaks the contract"`} {
		if !bytes.Contains(logs, []byte(want)) {
			t.Errorf("the log lacks %s: the scan would prove nothing", want)
		}
	}
	secrets := append([]string{testSecret, "PAYLOAD-MARKER", "UPSTREAM-PAYLOAD-MARKER"}, tokens...)
	for _, tk := range tokens {
		secrets = append(secrets, strings.Split(tk, ".")[2]) // the signature alone
	}
	for _, secret := range secrets {
		if bytes.Contains(logs, []byte(secret)) {
			t.Errorf("the log holds a secret (%.12s…)", secret)
		}
	}
}

// TestReadmeSnippetsAdapt: every caddyfile block of the README, and
// Caddyfile.example, adapts. A block that is only the directive is adapted
// inside a site.
func TestReadmeSnippetsAdapt(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```caddyfile\n(.*?)```").FindAllSubmatch(readme, -1)
	if len(blocks) < 3 {
		t.Fatalf("found %d caddyfile blocks in the README", len(blocks))
	}
	for i, m := range blocks {
		snippet := string(m[1])
		if strings.HasPrefix(strings.TrimSpace(snippet), "ownid_sessions") {
			snippet = ":8080 {\n" + snippet + "\n}\n"
		}
		if _, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(snippet), nil); err != nil {
			t.Errorf("README caddyfile block %d does not adapt: %v\n%s", i+1, err, m[1])
		}
	}
}
