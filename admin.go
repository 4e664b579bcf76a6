package ownidsessions

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
)

func init() {
	caddy.RegisterModule(adminAPI{})
}

// liveHandlers are the provisioned handlers of the running configs, for the
// admin endpoint.
var liveHandlers sync.Map // *Handler → struct{}

// adminAPI is the admin endpoint GET /ownid_sessions/: per handler its mode,
// store and JWKS state; per memory store its live sessions by app.
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
	Handlers     []handlerStatus         `json:"handlers"`
	MemoryStores map[string]memoryStatus `json:"memory_stores"`
}

type handlerStatus struct {
	Mode  string       `json:"mode"`
	Spec  string       `json:"spec"`
	Store string       `json:"store,omitempty"`
	JWKS  []jwksStatus `json:"jwks,omitempty"`
}

type jwksStatus struct {
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
	memoryTables.Range(func(name, value any) bool {
		if t, ok := value.(*sessionTable); ok {
			status.MemoryStores[name.(string)] = memoryStatus{LiveSessions: t.live.Load(), Apps: t.countByApp()}
		}
		return true
	})
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
	switch s := h.store.(type) {
	case *MemoryStore:
		st.Store = "memory:" + s.Name
	case *RedisStore:
		st.Store = "redis"
		if u, err := url.Parse(caddy.NewReplacer().ReplaceKnown(s.URL, "")); err == nil {
			st.Store = "redis:" + u.Host + " " + s.KeyPrefix
		}
	}
	for _, set := range h.verifier.JWKS() {
		js := jwksStatus{URL: set.URL, Loaded: set.Loaded, Keys: set.Keys, LastError: set.LastError}
		if !set.LastFetch.IsZero() {
			js.LastFetch = set.LastFetch.UTC().Format(time.RFC3339)
		}
		st.JWKS = append(st.JWKS, js)
	}
	return st
}

// countByApp counts the sessions of each app, one shard at a time.
func (t *sessionTable) countByApp() map[string]int {
	apps := map[string]int{}
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.RLock()
		for owner, sessions := range sh.owners {
			apps[owner.App] += len(sessions)
		}
		sh.mu.RUnlock()
	}
	return apps
}

// Interface guard
var _ caddy.AdminRouter = adminAPI{}
