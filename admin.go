package ownidsessions

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/ownid-sessions/caddy-ownid-sessions/store"
)

func init() {
	caddy.RegisterModule(adminAPI{})
}

// liveHandlers are the provisioned handlers of the running configs, for the
// admin endpoint.
var liveHandlers sync.Map // *Handler → struct{}

// counters are the running handlers' stores that count their sessions
// (store.Counter), by name: handlers that name the same store share its
// sessions, which are counted once.
func counters() map[string]store.Counter {
	out := map[string]store.Counter{}
	liveHandlers.Range(func(key, _ any) bool {
		if c, ok := key.(*Handler).store.(store.Counter); ok {
			out[c.Usage().Name] = c
		}
		return true
	})
	return out
}

// adminAPI is the admin endpoint GET /ownid_sessions/: per handler its mode,
// store (as a store.Describer describes itself) and JWKS state; per store
// that counts its sessions (a store.Counter: the memory store) its live
// sessions by app.
type adminAPI struct{}

// CaddyModule returns the Caddy module information.
func (adminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.ownid_sessions",
		New: func() caddy.Module { return new(adminAPI) },
	}
}

// Routes returns the admin routes.
func (a adminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{{Pattern: "/ownid_sessions/", Handler: caddy.AdminHandlerFunc(a.serveStatus)}}
}

type adminStatus struct {
	Handlers []handlerStatus `json:"handlers"`
	// MemoryStores are the stores that count their sessions
	// (store.Counter), by name: the memory stores.
	MemoryStores map[string]memoryStatus `json:"memory_stores"`
}

type handlerStatus struct {
	Mode  string       `json:"mode"`
	Spec  string       `json:"spec"`
	Store string       `json:"store,omitempty"`
	JWKS  []jwksStatus `json:"jwks,omitempty"`
}

type jwksStatus struct {
	Provider  string `json:"provider,omitempty"`
	URL       string `json:"url"`
	Loaded    bool   `json:"loaded"`
	Keys      int64  `json:"keys"`
	LastFetch string `json:"last_fetch,omitempty"`
	LastError string `json:"last_error,omitempty"`
}

type memoryStatus struct {
	LiveSessions int64          `json:"live_sessions"`
	Apps         map[string]int `json:"apps"`
}

func (adminAPI) serveStatus(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: fmt.Errorf("method not allowed")}
	}
	status := adminStatus{Handlers: []handlerStatus{}, MemoryStores: map[string]memoryStatus{}}
	liveHandlers.Range(func(key, _ any) bool {
		status.Handlers = append(status.Handlers, key.(*Handler).status())
		return true
	})
	sort.Slice(status.Handlers, func(i, j int) bool {
		return fmt.Sprint(status.Handlers[i]) < fmt.Sprint(status.Handlers[j])
	})
	for name, c := range counters() {
		status.MemoryStores[name] = memoryStatus{LiveSessions: c.Usage().Sessions, Apps: c.SessionsByApp()}
	}
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(status)
}

// status describes a handler without any secret: no keys, no URL
// credentials or query.
func (h *Handler) status() handlerStatus {
	st := handlerStatus{Mode: h.Mode, Spec: h.Spec}
	if st.Spec == "" {
		st.Spec = "embedded"
	}
	st.Store = describe(h.store)
	for _, set := range h.verifier.JWKS() {
		js := jwksStatus{Provider: set.Provider, URL: set.URL, Loaded: set.Loaded, Keys: set.Keys, LastError: set.LastError}
		if !set.LastFetch.IsZero() {
			js.LastFetch = set.LastFetch.UTC().Format(time.RFC3339)
		}
		st.JWKS = append(st.JWKS, js)
	}
	return st
}

// describe is how the store describes itself (store.Describer), or "" when
// it does not (or there is none: forward mode).
func describe(s store.Store) string {
	if d, ok := s.(store.Describer); ok {
		return d.Describe()
	}
	return ""
}

// Interface guard
var _ caddy.AdminRouter = adminAPI{}
