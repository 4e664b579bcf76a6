package ownidsessions

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap"

	"github.com/ownid-sessions/caddy-ownid-sessions/internal/jwtauth"
	"github.com/ownid-sessions/caddy-ownid-sessions/internal/redistest"
)

// The session lifecycle through a real Caddy, in both stores: absolute
// lifetime, revoke-all, list pages and tokens bound to sessions.

// bothStores is a fresh store of each kind, as a Caddyfile store line: a
// memory table of its own and a key prefix of its own in the shared Redis.
func bothStores(t *testing.T, name string) map[string]string {
	n := time.Now().UnixNano()
	return map[string]string{
		"memory": fmt.Sprintf("store memory %s-%d", name, n),
		"redis":  fmt.Sprintf("store redis %s {\n\t\t\tkey_prefix %s:%d:\n\t\t}", redistest.SharedURL(t), name, n),
	}
}

// storeSite is the end-to-end site with an HS256 provider, the store and
// extra subdirectives.
func storeSite(storeLine, extra string) string {
	return siteConfig("grace_period 1ns", `
		jwt {
			alg HS256
			secret {env.OWNID_TEST_SECRET}
		}
		`+storeLine+`
		`+extra)
}

func parseTime(t *testing.T, s string) time.Time {
	t.Helper()
	at, err := time.Parse(timeLayout, s)
	if err != nil {
		t.Fatalf("time %q: %v", s, err)
	}
	return at
}

func TestAbsoluteLifetime(t *testing.T) {
	for name, storeLine := range bothStores(t, "lifetime") {
		t.Run(name, func(t *testing.T) {
			tc := caddytest.NewTester(t)
			tc.InitServer(storeSite(storeLine, "max_lifetime 1h\n\t\tsession_timeout 10m"), "caddyfile")
			sub := "abs-" + name
			tok := tokenFor(t, sub)

			short, _ := create(t, tc, "/abs", tok, `{"payload":{},"timeout":600,"expiration":120}`)
			dflt, _ := create(t, tc, "/abs", tok, `{"payload":{}}`)
			capped, _ := create(t, tc, "/abs", tok, `{"payload":{},"expiration":7200}`)
			for _, c := range []struct {
				s    sessionOut
				want time.Duration
			}{{short, 2 * time.Minute}, {dflt, time.Hour}, {capped, time.Hour}} {
				if c.s.ExpiresAt == "" {
					t.Fatalf("%s: no expiresAt", c.s.ID)
				}
				if got := parseTime(t, c.s.ExpiresAt).Sub(parseTime(t, c.s.Created)); got != c.want {
					t.Errorf("%s: expiresAt is created+%s, want +%s", c.s.ID, got, c.want)
				}
			}

			// Activity keeps the session from idling out, and never moves
			// its end.
			advanceClock(t, 100*time.Second)
			tok = tokenFor(t, sub)
			r := call(t, tc, request{method: "PUT", path: "/abs/accounts/sessions/" + short.ID, token: tok, body: `{"payload":{"n":1}}`})
			var up sessionOut
			r.json(t, &up)
			if r.status != 200 || up.ExpiresAt != short.ExpiresAt || up.LastActive == short.LastActive {
				t.Fatalf("put: %d %s", r.status, r.body)
			}
			// The handlers' clock is the real one moved forward, so it
			// runs on between two requests: margins of seconds.
			advanceClock(t, 15*time.Second)
			tok = tokenFor(t, sub)
			if r := call(t, tc, request{method: "GET", path: "/abs/accounts/sessions/" + short.ID, token: tok}); r.status != 200 {
				t.Fatalf("before its end: %d %s", r.status, r.body)
			}
			advanceClock(t, 5*time.Second) // created + 120s, 20s after the PUT
			tok = tokenFor(t, sub)
			for _, rq := range []request{
				{method: "GET", path: "/abs/accounts/sessions/" + short.ID},
				{method: "PUT", path: "/abs/accounts/sessions/" + short.ID, body: `{}`},
				{method: "DELETE", path: "/abs/accounts/sessions/" + short.ID},
			} {
				rq.token = tok
				if r := call(t, tc, rq); r.status != 404 {
					t.Errorf("%s at its end: %d %s", rq.method, r.status, r.body)
				}
			}
			var list []sessionOut
			call(t, tc, request{method: "GET", path: "/abs/accounts/sessions", token: tok}).json(t, &list)
			if len(list) != 2 || slices.ContainsFunc(list, func(s sessionOut) bool { return s.ID == short.ID }) {
				t.Fatalf("list at its end: %+v", list)
			}

			// expiration is a whole number of seconds from 1 to ten years.
			for _, body := range []string{
				`{"payload":{},"expiration":0}`, `{"payload":{},"expiration":-5}`, `{"payload":{},"expiration":1.5}`,
				`{"payload":{},"expiration":"60"}`, `{"payload":{},"expiration":null}`, `{"payload":{},"expiration":315360001}`,
			} {
				if r := call(t, tc, request{method: "POST", path: "/abs/accounts/sessions", token: tok, body: body}); r.status != 400 {
					t.Errorf("%s: %d %s", body, r.status, r.body)
				}
			}
			call(t, tc, request{method: "GET", path: "/abs/accounts/sessions", token: tok}).json(t, &list)
			if len(list) != 2 {
				t.Fatalf("a refused create stored a session: %d", len(list))
			}
		})
	}
}

// TestNoLifetimeByDefault: without max_lifetime and expiration, a session
// has no absolute end and its answers no expiresAt; with expiration alone,
// it has one.
func TestNoLifetimeByDefault(t *testing.T) {
	tc := caddytest.NewTester(t)
	tc.InitServer(storeSite("store memory no-lifetime", ""), "caddyfile")
	tok := tokenFor(t, "no-lifetime")
	open, r := create(t, tc, "/nl", tok, `{"payload":{}}`)
	if open.ExpiresAt != "" || strings.Contains(string(r.body), "expiresAt") {
		t.Fatalf("expiresAt without a lifetime: %s", r.body)
	}
	ends, _ := create(t, tc, "/nl", tok, `{"payload":{},"expiration":31536000}`)
	if got := parseTime(t, ends.ExpiresAt).Sub(parseTime(t, ends.Created)); got != 365*24*time.Hour {
		t.Fatalf("expiration of a year: created+%s", got)
	}
}

func TestRevokeAll(t *testing.T) {
	for name, storeLine := range bothStores(t, "revoke") {
		t.Run(name, func(t *testing.T) {
			tc := caddytest.NewTester(t)
			tc.InitServer(storeSite(storeLine, "max_sessions 1000"), "caddyfile")
			alice, bob := tokenFor(t, "alice-"+name), tokenFor(t, "bob-"+name)
			var ids []string
			for range 5 {
				s, _ := create(t, tc, "/ra", alice, `{"payload":{}}`)
				ids = append(ids, s.ID)
			}
			create(t, tc, "/ra", bob, `{"payload":{}}`)
			create(t, tc, "/other", alice, `{"payload":{}}`)
			count := func(app, tok string) int {
				var list []sessionOut
				call(t, tc, request{method: "GET", path: app + "/accounts/sessions", token: tok}).json(t, &list)
				return len(list)
			}
			deleteAll := func(query string) int {
				t.Helper()
				r := call(t, tc, request{method: "DELETE", path: "/ra/accounts/sessions" + query, token: alice})
				n, err := strconv.Atoi(r.header.Get("Sessions-Deleted"))
				if r.status != 204 || err != nil || len(r.body) != 0 {
					t.Fatalf("DELETE%s: %d %q %s", query, r.status, r.header.Get("Sessions-Deleted"), r.body)
				}
				return n
			}
			// Log out everywhere else.
			if n := deleteAll("?except=" + ids[2]); n != 4 {
				t.Fatalf("deleted %d, want 4", n)
			}
			if r := call(t, tc, request{method: "GET", path: "/ra/accounts/sessions/" + ids[2], token: alice}); r.status != 200 {
				t.Fatalf("the kept session: %d", r.status)
			}
			if count("/ra", alice) != 1 || count("/ra", bob) != 1 || count("/other", alice) != 1 {
				t.Fatalf("after except: alice %d, bob %d, alice's other app %d", count("/ra", alice), count("/ra", bob), count("/other", alice))
			}
			if n := deleteAll("?except=" + ids[0]); n != 1 { // a deleted id kept: nothing to keep
				t.Fatalf("deleted %d, want 1", n)
			}
			if n := deleteAll(""); n != 0 {
				t.Fatalf("deleted %d of none", n)
			}
			if r := call(t, tc, request{method: "DELETE", path: "/ra/accounts/sessions?except=a%20b", token: alice}); r.status != 400 {
				t.Fatalf("bad except: %d", r.status)
			}
			if count("/ra", bob) != 1 || count("/other", alice) != 1 {
				t.Fatal("another account's or app's sessions were deleted")
			}

			// Under concurrent creates the counts add up: every created
			// session was either deleted (and counted) or is still listed.
			const writers, each = 4, 25
			var created atomic.Int64
			var wg sync.WaitGroup
			errs := make(chan string, writers*each)
			for range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range each {
						req, _ := http.NewRequest("POST", base+"/ra/accounts/sessions", strings.NewReader(`{"payload":{}}`))
						req.Header.Set("Authorization", "Bearer "+alice)
						req.Header.Set("Content-Type", "application/json")
						resp, err := tc.Client.Do(req)
						if err != nil {
							errs <- err.Error()
							continue
						}
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if resp.StatusCode != 201 {
							errs <- fmt.Sprint("create: ", resp.StatusCode)
							continue
						}
						created.Add(1)
					}
				}()
			}
			done := make(chan struct{})
			go func() { wg.Wait(); close(done) }()
			deleted, rounds := 0, 0
			for running := true; running; {
				select {
				case <-done:
					running = false
				default:
					deleted += deleteAll("")
					rounds++
					time.Sleep(2 * time.Millisecond)
				}
			}
			close(errs)
			for e := range errs {
				t.Error(e)
			}
			left := count("/ra", alice)
			if int(created.Load()) != deleted+left || created.Load() != writers*each {
				t.Fatalf("created %d, deleted %d, left %d", created.Load(), deleted, left)
			}
			t.Logf("created %d: %d deleted by %d revoke-alls while creating, %d left", created.Load(), deleted, rounds, left)
		})
	}
}

var nextLinkPattern = regexp.MustCompile(`^<([^>]+)>; rel="next"$`)

func TestListPages(t *testing.T) {
	for name, storeLine := range bothStores(t, "pages") {
		t.Run(name, func(t *testing.T) {
			tc := caddytest.NewTester(t)
			tc.InitServer(storeSite(storeLine, "max_sessions 300"), "caddyfile")
			alice := tokenFor(t, "alice-pages-"+name)
			want := map[string]bool{}
			var ids []string
			for range 250 {
				s, _ := create(t, tc, "/pg", alice, `{"payload":{}}`)
				want[s.ID] = true
				ids = append(ids, s.ID)
			}
			// The ten oldest become the most recently active.
			advanceClock(t, time.Second)
			alice = tokenFor(t, "alice-pages-"+name)
			for _, id := range ids[:10] {
				if r := call(t, tc, request{method: "PUT", path: "/pg/accounts/sessions/" + id, token: alice, body: `{}`}); r.status != 200 {
					t.Fatalf("put: %d", r.status)
				}
			}

			var all []sessionOut
			r := call(t, tc, request{method: "GET", path: "/pg/accounts/sessions", token: alice})
			r.json(t, &all)
			if len(all) != 250 || r.header.Get("Link") != "" {
				t.Fatalf("whole list: %d sessions, Link %q", len(all), r.header.Get("Link"))
			}
			ordered := slices.IsSortedFunc(all, func(a, b sessionOut) int {
				return cmp.Or(strings.Compare(b.LastActive, a.LastActive), strings.Compare(a.ID, b.ID))
			})
			if !ordered || !slices.Contains(ids[:10], all[0].ID) || all[0].ExpiresAt != "" {
				t.Fatalf("whole list not the most recently active first, then by id: %+v", all[:3])
			}

			var paged []sessionOut
			var sizes []int
			path, cursorURL := "/pg/accounts/sessions?limit=100", ""
			for path != "" {
				r := call(t, tc, request{method: "GET", path: path, token: alice})
				var page []sessionOut
				r.json(t, &page)
				if r.status != 200 {
					t.Fatalf("%s: %d %s", path, r.status, r.body)
				}
				paged, sizes, path = append(paged, page...), append(sizes, len(page)), ""
				if link := r.header.Get("Link"); link != "" {
					m := nextLinkPattern.FindStringSubmatch(link)
					if m == nil || !strings.HasPrefix(m[1], "/pg/accounts/sessions?limit=100&cursor=") {
						t.Fatalf("Link %q", link)
					}
					path, cursorURL = m[1], m[1]
				}
			}
			if !slices.Equal(sizes, []int{100, 100, 50}) {
				t.Fatalf("page sizes %v, want 100 100 50", sizes)
			}
			seen := map[string]bool{}
			for i, s := range paged {
				if seen[s.ID] || !want[s.ID] {
					t.Fatalf("session %s twice or not alice's", s.ID)
				}
				seen[s.ID] = true
				if s.ID != all[i].ID {
					t.Fatalf("page order differs from the list at %d", i)
				}
			}
			if len(seen) != 250 {
				t.Fatalf("pages hold %d sessions, want 250", len(seen))
			}

			// A cursor is good only as given, for the account and app it
			// was given to.
			cursor := cursorURL[strings.Index(cursorURL, "cursor=")+len("cursor="):]
			// Another base64url letter in the middle: other bytes, still
			// a well-formed cursor.
			flip := []byte(cursor)
			if flip[len(flip)/2] == 'A' {
				flip[len(flip)/2] = 'B'
			} else {
				flip[len(flip)/2] = 'A'
			}
			bob := tokenFor(t, "bob-pages-"+name)
			otherIssuer := tokenWith(t, "alice-pages-"+name, jwt.MapClaims{"iss": "https://other.example"})
			for what, rq := range map[string]request{
				"altered":         {path: "/pg/accounts/sessions?limit=100&cursor=" + string(flip), token: alice},
				"truncated":       {path: "/pg/accounts/sessions?limit=100&cursor=" + cursor[:len(cursor)-2], token: alice},
				"made up":         {path: "/pg/accounts/sessions?limit=100&cursor=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", token: alice},
				"other account":   {path: cursorURL, token: bob},
				"other issuer":    {path: cursorURL, token: otherIssuer},
				"other app":       {path: "/pg2/accounts/sessions?limit=100&cursor=" + cursor, token: alice},
				"not base64url":   {path: "/pg/accounts/sessions?limit=100&cursor=a.b", token: alice},
				"limit 0":         {path: "/pg/accounts/sessions?limit=0", token: alice},
				"limit 1001":      {path: "/pg/accounts/sessions?limit=1001", token: alice},
				"limit not a num": {path: "/pg/accounts/sessions?limit=ten", token: alice},
			} {
				rq.method = "GET"
				r := call(t, tc, rq)
				if r.status != 400 {
					t.Errorf("%s cursor: %d %s", what, r.status, r.body)
					continue
				}
				p := r.problem(t)
				// The document's pattern refuses what is not base64url
				// before the cursor is read.
				if what != "not base64url" && strings.Contains(what, "limit") != (p.Type != problemTypeBase+"invalid-cursor") {
					t.Errorf("%s: problem %s", what, p.Type)
				}
			}
			// The cursor itself still works for alice.
			if r := call(t, tc, request{method: "GET", path: cursorURL, token: alice}); r.status != 200 {
				t.Fatalf("the real cursor: %d", r.status)
			}
		})
	}
}

// edgeSites is a serve-mode site on 9080 and a forward-mode site on 9081 in
// front of backendURL, both binding tokens to sessions by their sid claim
// and reading one store (storeLine).
func edgeSites(storeLine, backendURL, bindExtra string) string {
	handler := func(mode string) string {
		return `
	ownid_sessions {
		mode ` + mode + `
		jwt {
			alg HS256
			secret {env.OWNID_TEST_SECRET}
			session_claim sid
			` + bindExtra + `
		}
		` + storeLine + `
	}`
	}
	return `
{
` + testGlobals + `
	grace_period 1ns
}
http://localhost:9080 {` + handler("serve") + `
}
http://localhost:9081 {` + handler("forward") + `
	reverse_proxy ` + strings.TrimPrefix(backendURL, "http://") + `
}
`
}

// TestEdgeRevocation: a token bound to a session (sid) works at the
// forward-mode site while the session lives; deleting the session at the
// serve-mode site ends the token at both at once, and the backend never
// sees it again. The two sites share a real Redis.
func TestEdgeRevocation(t *testing.T) {
	be := newBackend(t)
	tc := caddytest.NewTester(t)
	prefix := fmt.Sprintf("edge:%d:", time.Now().UnixNano())
	tc.InitServer(edgeSites("store redis "+redistest.SharedURL(t)+" {\n\t\t\tkey_prefix "+prefix+"\n\t\t}", be.URL, ""), "caddyfile")
	sub := fmt.Sprint("edge-", time.Now().UnixNano())
	login := tokenFor(t, sub) // not bound: it makes the session
	r := at(t, tc, 9080, request{method: "POST", path: "/app/accounts/sessions", token: login, body: `{"payload":{}}`})
	var s sessionOut
	r.json(t, &s)
	if r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	bound := tokenWith(t, sub, jwt.MapClaims{"sid": s.ID})

	before := be.count()
	if r := at(t, tc, 9081, request{method: "GET", path: "/app/accounts/sessions", token: bound}); r.status != 200 || be.count() != before+1 {
		t.Fatalf("bound token while its session lives: %d, backend saw %d", r.status, be.count()-before)
	}
	if r := at(t, tc, 9080, request{method: "GET", path: "/app/accounts/sessions/" + s.ID, token: bound}); r.status != 200 {
		t.Fatalf("bound token at the serve site: %d", r.status)
	}
	// A session of another account or app, or none, is no session of the
	// token's: refused at the edge.
	for what, tok := range map[string]string{
		"another account": tokenWith(t, sub+"-other", jwt.MapClaims{"sid": s.ID}),
		"no such session": tokenWith(t, sub, jwt.MapClaims{"sid": "nosuchsession0000000000"}),
		"not an id":       tokenWith(t, sub, jwt.MapClaims{"sid": "../x"}),
	} {
		before := be.count()
		r := at(t, tc, 9081, request{method: "GET", path: "/app/accounts/sessions", token: tok})
		if r.status != 401 || be.count() != before || r.problem(t).Type != problemTypeBase+"session-ended" {
			t.Errorf("%s: %d %s, backend saw %d", what, r.status, r.body, be.count()-before)
		}
	}
	before = be.count()
	if r := at(t, tc, 9081, request{method: "GET", path: "/other-app/accounts/sessions", token: bound}); r.status != 401 || be.count() != before {
		t.Errorf("another app: %d, backend saw %d", r.status, be.count()-before)
	}
	for what, tok := range map[string]string{
		"a number":        tokenWith(t, sub, jwt.MapClaims{"sid": 7}),
		"an empty string": tokenWith(t, sub, jwt.MapClaims{"sid": ""}),
	} {
		if r := at(t, tc, 9081, request{method: "GET", path: "/app/accounts/sessions", token: tok}); r.status != 401 {
			t.Errorf("sid %s: %d", what, r.status)
		}
	}

	// Log out at the serve site: the token dies at every edge at once.
	if r := at(t, tc, 9080, request{method: "DELETE", path: "/app/accounts/sessions/" + s.ID, token: login}); r.status != 204 {
		t.Fatalf("delete: %d", r.status)
	}
	before = be.count()
	for _, port := range []int{9081, 9080} {
		r := at(t, tc, port, request{method: "GET", path: "/app/accounts/sessions", token: bound})
		if r.status != 401 || r.problem(t).Type != problemTypeBase+"session-ended" {
			t.Fatalf("bound token after logout at %d: %d %s", port, r.status, r.body)
		}
		if c := r.header.Get("WWW-Authenticate"); !strings.Contains(c, `error="invalid_token"`) {
			t.Errorf("challenge %q", c)
		}
	}
	if be.count() != before {
		t.Fatalf("the backend saw %d requests of an ended session", be.count()-before)
	}
	// Tokens without sid are not bound.
	if r := at(t, tc, 9081, request{method: "GET", path: "/app/accounts/sessions", token: login}); r.status != 200 {
		t.Fatalf("unbound token: %d", r.status)
	}
}

// TestSessionCheckTTL: with session_check_ttl, a live answer is remembered
// (the trade-off: a session deleted elsewhere admits its tokens for up to
// that long), never past the TTL, and a delete at the same handler forgets
// it at once. Two sites of one Caddy share a memory store.
func TestSessionCheckTTL(t *testing.T) {
	be := newBackend(t)
	tc := caddytest.NewTester(t)
	tc.InitServer(edgeSites("store memory check-ttl", be.URL, "session_check_ttl 30s"), "caddyfile")
	login := tokenFor(t, "ttl-user")
	var ids []string
	for range 2 {
		r := at(t, tc, 9080, request{method: "POST", path: "/app/accounts/sessions", token: login, body: `{"payload":{}}`})
		var s sessionOut
		r.json(t, &s)
		ids = append(ids, s.ID)
	}
	get := func(port int, sid string) int {
		return at(t, tc, port, request{method: "GET", path: "/app/accounts/sessions", token: tokenWith(t, "ttl-user", jwt.MapClaims{"sid": sid})}).status
	}
	// Both edges remember both sessions live.
	for _, id := range ids {
		if get(9081, id) != 200 || get(9080, id) != 200 {
			t.Fatal("bound tokens refused while their sessions live")
		}
	}
	// Deleted at the serve site: that site forgets at once; the forward
	// site still remembers the live answer.
	for _, id := range ids {
		if r := at(t, tc, 9080, request{method: "DELETE", path: "/app/accounts/sessions/" + id, token: login}); r.status != 204 {
			t.Fatalf("delete: %d", r.status)
		}
	}
	if get(9080, ids[0]) != 401 {
		t.Fatal("the site that deleted the session still admits its token")
	}
	if get(9081, ids[0]) != 200 {
		t.Fatal("the forward site did not remember the live answer")
	}
	advanceClock(t, 31*time.Second)
	if got := get(9081, ids[1]); got != 401 {
		t.Fatalf("after session_check_ttl: %d, want 401", got)
	}
}

// BenchmarkSessionClaim is a GET of one session through ServeHTTP with a
// token that is not bound, bound (one store read per request), and bound
// with session_check_ttl (a remembered live answer), in each store: the
// difference is what session_claim adds to a request.
func BenchmarkSessionClaim(b *testing.B) {
	stores := map[string]string{
		"memory": `{"type":"memory","name":"bench-claim"}`,
		"redis":  fmt.Sprintf(`{"type":"redis","url":%q,"key_prefix":"bench-claim:%d:"}`, redistest.SharedURL(b), time.Now().UnixNano()),
	}
	for _, storeName := range []string{"memory", "redis"} {
		for _, ttl := range []time.Duration{0, time.Minute} {
			h := &Handler{
				JWT:      &jwtauth.Config{Algorithms: []string{"HS256"}, Secret: testSecret, SessionClaim: "sid", SessionCheckTTL: caddy.Duration(ttl)},
				StoreRaw: json.RawMessage(stores[storeName]),
			}
			ctx, cancel := newTestContext(b)
			if err := h.Provision(ctx); err != nil {
				b.Fatal(err)
			}
			h.logger = zap.NewNop()
			unbound := sign(b, "HS256", claimsFor("bench-claim"))
			w := httptest.NewRecorder()
			h.ServeHTTP(w, newRequest("POST", "/bench/accounts/sessions", unbound, `{"payload":{"a":1}}`), nextMustNotRun)
			var s sessionJSON
			if err := json.Unmarshal(w.Body.Bytes(), &s); err != nil {
				b.Fatal(err, w.Body.String())
			}
			claims := claimsFor("bench-claim")
			claims["sid"] = s.ID
			bound := sign(b, "HS256", claims)
			cases := []struct {
				name, token string
			}{{"unbound", unbound}, {"bound", bound}}
			if ttl > 0 {
				cases = cases[1:]
			}
			for _, c := range cases {
				name := storeName + "/" + c.name
				if ttl > 0 {
					name += "/check_ttl=1m"
				}
				b.Run(name, func(b *testing.B) {
					r := newRequest("GET", "/bench/accounts/sessions/"+s.ID, c.token, "")
					rw := &discardWriter{h: http.Header{}}
					b.ReportAllocs()
					for b.Loop() {
						clear(rw.h)
						rw.code = 0
						if err := h.ServeHTTP(rw, r, nextMustNotRun); err != nil || rw.code != 200 {
							b.Fatalf("status %d, %v", rw.code, err)
						}
					}
				})
			}
			cancel()
		}
	}
}

// TestQueryParametersGivenOnce: a declared single-valued query parameter
// given twice, or spelled in another letter case, is a 400 and nothing is
// done (readers disagree on which value counts: on revoke-all, the session
// to keep); in forward mode nothing is forwarded.
func TestQueryParametersGivenOnce(t *testing.T) {
	tc := caddytest.NewTester(t)
	tc.InitServer(storeSite("store memory query-once", ""), "caddyfile")
	tok := tokenFor(t, "query-once")
	keep, _ := create(t, tc, "/q", tok, `{"payload":{}}`)
	create(t, tc, "/q", tok, `{"payload":{}}`)
	for _, rq := range []request{
		{method: "DELETE", path: "/q/accounts/sessions?except=nosuchsession0000000000&except=" + keep.ID},
		{method: "DELETE", path: "/q/accounts/sessions?EXCEPT=" + keep.ID},
		{method: "GET", path: "/q/accounts/sessions?limit=1&limit=2"},
		{method: "GET", path: "/q/accounts/sessions?Limit=1"},
	} {
		rq.token = tok
		if r := call(t, tc, rq); r.status != 400 {
			t.Errorf("%s %s: %d %s", rq.method, rq.path, r.status, r.body)
		}
	}
	var list []sessionOut
	call(t, tc, request{method: "GET", path: "/q/accounts/sessions", token: tok}).json(t, &list)
	if len(list) != 2 {
		t.Fatalf("%d sessions left, want both", len(list))
	}

	be := newBackend(t)
	tc.InitServer(forwardConfig(be.URL, "off", ""), "caddyfile")
	if r := fwd(t, tc, request{method: "DELETE", path: "/accounts/sessions?except=a&except=b", token: tok}); r.status != 400 || be.count() != 0 {
		t.Fatalf("forward mode: %d, backend saw %d", r.status, be.count())
	}
}
