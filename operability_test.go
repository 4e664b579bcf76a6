package ownidsessions

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddytest"
)

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
`+testGlobals+`
	grace_period 1ns
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
