package ownidsessions

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/ownid-sessions/caddy-ownid-sessions/internal/jwtauth"
)

// OAuth 2.0 Protected Resource Metadata (RFC 9728): what a client needs to
// find where to get a token for this API, served beside it.

// wellKnownMetadata is the path RFC 9728 §3 puts the metadata at.
const wellKnownMetadata = "/.well-known/oauth-protected-resource"

// resourceMetadata is the RFC 9728 document.
type resourceMetadata struct {
	Resource               string   `json:"resource"`
	AuthorizationServers   []string `json:"authorization_servers,omitempty"`
	ScopesSupported        []string `json:"scopes_supported,omitempty"`
	BearerMethodsSupported []string `json:"bearer_methods_supported"`
}

// provisionMetadata works out, once, the metadata document, the path it
// is served at and the URL that 401 challenges name.
func (h *Handler) provisionMetadata(providers []*jwtauth.Config) error {
	if h.ResourceMetadata == "" {
		return nil
	}
	u, err := url.Parse(h.ResourceMetadata)
	if err != nil || u.Scheme != "https" && u.Scheme != "http" || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("resource_metadata: %q is not a resource identifier (an http or https URL without query or fragment)", h.ResourceMetadata)
	}
	resourcePath := strings.TrimSuffix(u.EscapedPath(), "/")
	h.metadataPath = wellKnownMetadata + resourcePath
	h.metadataURL = u.Scheme + "://" + u.Host + h.metadataPath
	doc := resourceMetadata{Resource: h.ResourceMetadata, BearerMethodsSupported: []string{"header"}}
	for _, p := range providers {
		for _, iss := range append(slices.Clone(p.Issuers), p.Discover) {
			if iss != "" && !slices.Contains(doc.AuthorizationServers, iss) {
				doc.AuthorizationServers = append(doc.AuthorizationServers, iss)
			}
		}
	}
	for _, src := range h.TokenFrom {
		if src.From == "query" && !slices.Contains(doc.BearerMethodsSupported, "query") {
			doc.BearerMethodsSupported = append(doc.BearerMethodsSupported, "query")
		}
	}
	doc.ScopesSupported = h.contract.scopes()
	h.metadataBody, err = json.Marshal(doc)
	return err
}

// serveMetadata answers the metadata document (GET and HEAD).
func (h *Handler) serveMetadata(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		newProblem(kindMethodNotAllowed, r.Method+" is not served on this path").withHeader("Allow", "GET, HEAD").write(w)
		return nil
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "application/json")
	hdr.Set("Content-Length", strconv.Itoa(len(h.metadataBody)))
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(h.metadataBody)
	}
	return nil
}

// withMetadata adds resource_metadata to a 401 challenge (RFC 9728 §5.1),
// when the module serves the metadata.
func (h *Handler) withMetadata(p *problem) *problem {
	if h.metadataURL == "" || p == nil || p.kind.status() != http.StatusUnauthorized {
		return p
	}
	for i, hv := range p.headers {
		if hv[0] == "WWW-Authenticate" {
			p.headers[i][1] = hv[1] + `, resource_metadata="` + h.metadataURL + `"`
		}
	}
	return p
}

// scopes lists, once, every scope the document's security asks for.
func (c *contract) scopes() []string {
	var out []string
	for _, info := range c.byPattern {
		for _, op := range info.ops {
			for _, req := range op.security.requirements {
				for _, need := range req {
					for _, s := range need.scopes {
						if !slices.Contains(out, s) {
							out = append(out, s)
						}
					}
				}
			}
		}
	}
	slices.Sort(out)
	return out
}
