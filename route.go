package ownidsessions

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/width"
)

// How a request path is read. A path is spelled one way only: its canonical
// form (RFC 3986 §6), with nothing but unreserved characters and "/" in it,
// no empty segment and no dot segment. Such a path is routed as it is, and
// handed on as it is. Any other spelling is read the way the most lenient
// backend might read it (every escape decoded, more than once, "\" as "/",
// ";" parameters stripped, Unicode letters folded to ASCII, dot segments
// removed, any letter case): if one of those readings lands on a path of the
// document, the request is a near miss and refused; if none does, the path
// is undescribed.

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
	for _, reading := range lenientReadings(escaped) {
		if _, ok := c.routeFolded(reading); ok {
			return route{}, pathNearMiss
		}
	}
	return route{}, pathUndescribed
}

// canonicalPath says whether p is in the one form this module routes and
// hands on: "/" and unreserved characters (RFC 3986 §2.3) only, every
// segment non-empty and neither "." nor "..".
func canonicalPath(p string) bool {
	if len(p) < 2 || p[0] != '/' {
		return false
	}
	segStart := 1
	for i := 1; i <= len(p); i++ {
		if i < len(p) && p[i] != '/' {
			if !unreserved(p[i]) {
				return false
			}
			continue
		}
		seg := p[segStart:i]
		if seg == "" || seg == "." || seg == ".." {
			return false
		}
		segStart = i + 1
	}
	return true
}

func unreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

// lenientReadings are the ways a backend might read a path that is not
// canonical: escapes decoded until none is left, overlong UTF-8 and
// Unicode letters folded to ASCII, lower case, ";" parameters stripped and
// empty segments merged. They differ in three choices backends make
// differently: whether a decoded "/" or "\" separates segments (Tomcat with
// encodedSolidusHandling=decode, IIS, nginx's merge) or stays inside one
// (Go, Express); whether a decoded NUL, "?" or "#" ends the path (C
// strings, a second URL parse) or is a character of it; and whether dot
// segments are removed (RFC 3986, servlet containers) or taken literally.
func lenientReadings(escaped string) [8]string {
	var out [8]string
	for i := range out {
		out[i] = lenientReading(escaped, readingChoices{
			decodedSlashSplits: i&1 != 0,
			truncates:          i&2 != 0,
			removesDots:        i&4 != 0,
		})
	}
	return out
}

// readingChoices are the choices one lenient reading makes.
type readingChoices struct {
	decodedSlashSplits, truncates, removesDots bool
}

// inSegmentSlash stands for a decoded "/" or "\" that does not separate
// segments in a reading.
const inSegmentSlash = '\x01'

func lenientReading(escaped string, choices readingChoices) string {
	b := []byte(escaped)
	// Percent-decoding until nothing decodes: a double encoding
	// (%252f) is read as what a backend that decodes twice sees. Each
	// round shrinks the path, so this is linear in its length overall.
	for round := 0; round < 4; round++ {
		var changed bool
		b, changed = percentDecode(b, choices.decodedSlashSplits)
		if !changed {
			break
		}
	}
	b = foldOverlong(b)
	var sb strings.Builder
	sb.Grow(len(b))
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		b = b[size:]
		switch {
		case r == '\\' && choices.decodedSlashSplits:
			r = '/'
		case r == 0 || r == '?' || r == '#':
			if choices.truncates {
				b = nil
				continue
			}
		case r == '\t' || r == '\n' || r == '\r':
			continue // URL parsers (WHATWG) drop these
		case r >= utf8.RuneSelf:
			r = asciiFold(r)
		}
		sb.WriteRune(unicode.ToLower(r))
	}
	return normalizeSegments(sb.String(), choices.removesDots)
}

// percentDecode decodes every %XX once. A decoded "/" or "\" becomes
// inSegmentSlash unless it separates segments in this reading.
func percentDecode(b []byte, decodedSlashSplits bool) ([]byte, bool) {
	out := b[:0:0]
	changed := false
	for i := 0; i < len(b); i++ {
		if b[i] == '%' && i+2 < len(b) && isHex(b[i+1]) && isHex(b[i+2]) {
			c := unhex(b[i+1])<<4 | unhex(b[i+2])
			if (c == '/' || c == '\\') && !decodedSlashSplits {
				c = inSegmentSlash
			}
			out = append(out, c)
			i += 2
			changed = true
			continue
		}
		out = append(out, b[i])
	}
	return out, changed
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// foldOverlong reads overlong two-byte UTF-8 sequences (0xC0 0xAF for "/")
// as the ASCII character they spell, as some decoders do.
func foldOverlong(b []byte) []byte {
	out := b[:0:0]
	for i := 0; i < len(b); i++ {
		if (b[i] == 0xC0 || b[i] == 0xC1) && i+1 < len(b) && b[i+1]&0xC0 == 0x80 {
			out = append(out, (b[i]&0x1F)<<6|b[i+1]&0x3F)
			i++
			continue
		}
		out = append(out, b[i])
	}
	return out
}

// asciiFold maps a letter that some stack folds to ASCII onto that ASCII
// letter: fullwidth forms (width folding), and letters whose case mapping
// or case-folding orbit holds an ASCII letter (U+017F ſ → s, U+0131 ı → i,
// U+212A Kelvin sign → k). Anything else is left as it is.
func asciiFold(r rune) rune {
	if folded, _ := utf8.DecodeRuneInString(width.Fold.String(string(r))); folded < utf8.RuneSelf {
		return folded
	}
	for _, c := range []rune{unicode.ToLower(r), unicode.ToUpper(r)} {
		if c < utf8.RuneSelf {
			return c
		}
	}
	for c := unicode.SimpleFold(r); c != r; c = unicode.SimpleFold(c) {
		if c < utf8.RuneSelf {
			return c
		}
	}
	return r
}

// normalizeSegments gives a path its segments without ";" parameters and
// empty segments, and without dot segments when removesDots (as RFC 3986
// §5.2.4 and servlet containers read them).
func normalizeSegments(p string, removesDots bool) string {
	var segs []string
	for _, seg := range strings.Split(p, "/") {
		if i := strings.IndexByte(seg, ';'); i >= 0 {
			seg = seg[:i]
		}
		switch {
		case seg == "":
		case removesDots && seg == ".":
		case removesDots && seg == "..":
			if len(segs) > 0 {
				segs = segs[:len(segs)-1]
			}
		default:
			segs = append(segs, seg)
		}
	}
	return "/" + strings.Join(segs, "/")
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
	if len(app) <= maxAppLength {
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
