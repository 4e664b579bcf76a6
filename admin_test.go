package ownidsessions

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"

	"github.com/caddyserver/caddy/v2/caddytest"

	"github.com/ownid-sessions/caddy-ownid-sessions/internal/testkit"
	"github.com/ownid-sessions/caddy-ownid-sessions/store"
)

// TestAdminEndpoint: GET /ownid_sessions/ on the admin API reports each
// handler's store and JWKS state and the memory stores' sessions per app,
// with no secret in it.
func TestAdminEndpoint(t *testing.T) {
	jwksSrv := testkit.NewJWKSServer(t)
	jwksSrv.Serve(t, testkit.JWK{KID: "k", Key: &testKeys.RSA.PublicKey})
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

// describedStore is a store from elsewhere that describes itself and counts
// its sessions; plainStore does neither. Their Store methods are never
// called here.
type describedStore struct {
	store.Store
	name string
}

func (s describedStore) Describe() string { return "described:" + s.name }
func (s describedStore) Usage() store.Usage {
	return store.Usage{Name: s.name, Sessions: 2, Bytes: 100}
}
func (s describedStore) SessionsByApp() map[string]int { return map[string]int{"/a": 2} }

type plainStore struct{ store.Store }

// TestStoresSeenThroughOptionalInterfaces: the admin endpoint and the
// metrics know a store only by store.Describer and store.Counter, whatever
// module it is.
func TestStoresSeenThroughOptionalInterfaces(t *testing.T) {
	name := "optional-" + t.Name()
	one, two := &Handler{store: describedStore{name: name}}, &Handler{store: describedStore{name: name}}
	plain := &Handler{store: plainStore{}}
	for _, h := range []*Handler{one, two, plain} {
		liveHandlers.Store(h, struct{}{})
		t.Cleanup(func() { liveHandlers.Delete(h) })
	}
	if got := describe(one.store); got != "described:"+name {
		t.Errorf("a Describer is shown as %q", got)
	}
	if got := describe(plain.store); got != "" {
		t.Errorf("a store that describes nothing is shown as %q", got)
	}
	c, ok := counters()[name]
	if !ok || c.Usage().Sessions != 2 || c.SessionsByApp()["/a"] != 2 {
		t.Fatalf("the Counter is not counted: %v", counters())
	}
}
