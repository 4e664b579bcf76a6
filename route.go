package ownidsessions

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	v3 "github.com/pb33f/libopenapi/datamodel/high/v3"
)

// maxSessionIDLength bounds a session id in a path; ids this module makes
// are 22 characters.
const maxSessionIDLength = 128

// maxAppLength bounds the app prefix: it is part of every key the store
// keeps.
const maxAppLength = 256

// route is where a request lands in the contract: the path and, resolved
// once, the operation of the request's method.
type route struct {
	app       string // the path prefix before the document's paths ("" or "/…")
	template  string // the document's path template, e.g. itemPath
	path      string // the request path below the app prefix
	sessionID string // for itemPath of the session contract
	info      *pathInfo
	op        *operation // nil for a method the path does not declare
}

// operation names the operation a route lands on, for metrics and logs.
func (rt *route) operation() string {
	if rt.op == nil {
		return "undeclared"
	}
	return rt.op.name
}

// pathClass is what a request path is to the document.
type pathClass int

const (
	// pathUndescribed: no reading of the path is a path of the document.
	pathUndescribed pathClass = iota
	// pathContract: the path is canonical and a path of the document.
	pathContract
	// pathNearMiss: the path is not canonical, or differs in case, and a
	// lenient reading of it is a path of the document.
	pathNearMiss
)

// classify reads a request path, given as sent (escaped), and routes it
// with its method.
func (c *contract) classify(escaped, method string) (route, pathClass) {
	if canonicalPath(escaped) {
		if rt, ok := c.route(escaped); ok {
			rt.info = c.paths[rt.template]
			rt.op = rt.info.ops[method]
			return rt, pathContract
		}
		if _, ok := c.routeFolded(strings.ToLower(escaped)); ok {
			return route{}, pathNearMiss
		}
		return route{}, pathUndescribed
	}
	readings, converged := lenientReadings(escaped)
	if !converged {
		return route{}, pathNearMiss // escapes nested past any backend's reading
	}
	for _, reading := range readings {
		if _, ok := c.routeFolded(reading); ok {
			return route{}, pathNearMiss
		}
	}
	return route{}, pathUndescribed
}

// route finds the operation path a canonical request path lands on.
// Documents of the session API use the contract's rule (the app is whatever
// comes before /accounts/sessions); other documents use their servers' base
// paths and their own path templates.
func (c *contract) route(path string) (route, bool) {
	if c.sessions {
		return parseRoute(path)
	}
	return c.routeBy(path, false)
}

// routeFolded is route for a path already in lower case, against the
// document's paths in any case.
func (c *contract) routeFolded(lower string) (route, bool) {
	if c.sessions {
		return parseRoute(lower)
	}
	return c.routeBy(lower, true)
}

// routeBy routes a path by the servers' base paths and the path templates,
// exactly or whatever the case.
func (c *contract) routeBy(path string, folded bool) (route, bool) {
	bases := c.bases
	if folded {
		bases = c.foldedBases
	}
	for _, base := range bases {
		loc := base.FindStringIndex(path)
		if loc == nil {
			continue
		}
		rest := path[loc[1]:]
		if rest == "" || rest[0] != '/' {
			continue
		}
		for _, p := range c.byPattern {
			re := p.pattern
			if folded {
				re = p.folded
			}
			if re.MatchString(rest) {
				return route{app: path[:loc[1]], template: p.template, path: rest}, true
			}
		}
	}
	return route{}, false
}

// parseRoute applies the session contract's rule: the app is whatever comes
// before /accounts/sessions, and an item is one more segment.
func parseRoute(path string) (route, bool) {
	if app, ok := strings.CutSuffix(path, collectionPath); ok {
		return route{app: app, template: collectionPath, path: collectionPath}, true
	}
	i := strings.LastIndex(path, collectionPath+"/")
	if i < 0 {
		return route{}, false
	}
	id := path[i+len(collectionPath)+1:]
	if id == "" || strings.Contains(id, "/") {
		return route{}, false
	}
	return route{app: path[:i], template: itemPath, path: path[i:], sessionID: id}, true
}

// checkApp refuses an app prefix that is too long, before anything is
// stored under it. (A routed path is canonical: it holds no control
// characters.)
func checkApp(app string) *problem {
	if len(strings.TrimPrefix(app, "/")) <= maxAppLength { // counted as the README says: without its "/"
		return nil
	}
	p := newProblem(kindInvalidRequest, "the app prefix before /accounts/sessions is at most 256 bytes")
	p.errors = []fieldError{{Location: "path", Message: "not a usable app prefix"}}
	return p
}

// validSessionID allows what the contract allows: 1 to 128 unreserved URL
// characters; "." and ".." are dot segments, not ids.
func validSessionID(id string) bool {
	if len(id) == 0 || len(id) > maxSessionIDLength || id == "." || id == ".." {
		return false
	}
	for i := 0; i < len(id); i++ {
		if !unreserved(id[i]) {
			return false
		}
	}
	return true
}

// templatePattern turns an OpenAPI path or server template into a regular
// expression: each {name} matches one non-empty path segment, in a capture
// group; variables names them in order.
func templatePattern(template string) (pattern string, literals int, variables []string, err error) {
	var b strings.Builder
	for i, seg := range strings.Split(template, "/") {
		if i > 0 {
			b.WriteByte('/')
		}
		if seg == "" {
			continue
		}
		open := strings.IndexByte(seg, '{')
		if open < 0 {
			b.WriteString(regexp.QuoteMeta(seg))
			literals++
			continue
		}
		// A segment may mix text and variables: "v{version}", "{a}.{b}".
		for seg != "" {
			open := strings.IndexByte(seg, '{')
			if open < 0 {
				b.WriteString(regexp.QuoteMeta(seg))
				break
			}
			end := strings.IndexByte(seg[open:], '}')
			if end < 0 {
				return "", 0, nil, fmt.Errorf("unclosed '{'")
			}
			b.WriteString(regexp.QuoteMeta(seg[:open]))
			b.WriteString(`([^/]+)`)
			variables = append(variables, seg[open+1:open+end])
			seg = seg[open+end+1:]
		}
	}
	return b.String(), literals, variables, nil
}

// serverBases compiles the base path of each server URL
// ("https://server.ownid.com/{appId}" → "/{appId}"), longest first.
func serverBases(servers []*v3.Server, flags string) ([]string, []*regexp.Regexp, error) {
	seen := map[string]bool{}
	var templates []string
	for _, s := range servers {
		if s == nil {
			continue
		}
		base := s.URL
		if i := strings.Index(base, "://"); i >= 0 {
			base = base[i+3:]
			if j := strings.IndexByte(base, '/'); j >= 0 {
				base = base[j:]
			} else {
				base = ""
			}
		}
		base = strings.TrimRight(base, "/")
		if !seen[base] {
			seen[base] = true
			templates = append(templates, base)
		}
	}
	if len(templates) == 0 {
		templates = append(templates, "") // no servers: the default server "/"
	}
	slices.SortStableFunc(templates, func(a, b string) int { return len(b) - len(a) })
	bases := make([]*regexp.Regexp, 0, len(templates))
	for _, t := range templates {
		pattern, _, _, err := templatePattern(t)
		if err != nil {
			return nil, nil, fmt.Errorf("server %s: %v", t, err)
		}
		bases = append(bases, regexp.MustCompile(flags+"^"+pattern))
	}
	return templates, bases, nil
}

// routes describes what the module routes, for the log at start: the base
// paths and the path templates below them.
func (c *contract) routes() (bases, templates []string) {
	for _, p := range c.byPattern {
		templates = append(templates, p.template)
	}
	if c.sessions {
		return []string{"{any app prefix}"}, templates
	}
	return c.baseTemplates, templates
}
