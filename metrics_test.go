package ownidsessions

import (
	"bufio"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/ownid-sessions/caddy-ownid-sessions/internal/testkit"
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
	jwksSrv := testkit.NewJWKSServer(t)
	jwksSrv.Serve(t)
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
	jwksSrv.Fail(true)
	tc.InitServer(siteConfig("grace_period 1ns", fmt.Sprintf(`
		jwt {
			alg RS256
			jwks %s
		}`, jwksSrv.URL)), "caddyfile")
	if got := scrape(t)[`caddy_ownid_sessions_jwks_fetches_total{result="error"}`] - after[`caddy_ownid_sessions_jwks_fetches_total{result="error"}`]; got < 1 {
		t.Errorf("a failed JWKS fetch was not counted")
	}
}

func TestStatusClass(t *testing.T) {
	for status, want := range map[int]string{200: "2xx", 204: "2xx", 404: "4xx", 502: "5xx", 0: "other", 700: "other"} {
		if got := statusClass(status); got != want {
			t.Errorf("statusClass(%d) = %s, want %s", status, got, want)
		}
	}
}
