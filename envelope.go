package ownidsessions

// The request's envelope: what a backend could read otherwise than this
// module checked it (a rewritten method or URL, a second Content-Type,
// trailers), refused on every path of the document.

import (
	"net/http"
	"net/url"
	"strings"
)

// rewritingHeaders are headers with which some frameworks and proxies
// replace a request's method or URL after it was checked here.
var rewritingHeaders = []string{
	"X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override",
	"X-Forwarded-Method", "X-Original-Method",
	"X-Original-URL", "X-Rewrite-URL",
}

// checkEnvelope refuses what would let a backend read the request otherwise
// than it was checked: a header or query parameter that rewrites the method
// or URL, a query that does not parse, more than one Content-Type, and
// trailers (header fields sent after the body, which no check here reads).
func checkEnvelope(r *http.Request) *problem {
	// Compared as CGI and PHP-FPM read names: any case, "_" as "-".
	for sent := range r.Header {
		name := strings.ReplaceAll(sent, "_", "-")
		for _, rewriting := range rewritingHeaders {
			if strings.EqualFold(name, rewriting) {
				return envelopeProblem(rewriting, "a header that rewrites the method or URL is not accepted")
			}
		}
	}
	if len(r.Header.Values("Content-Type")) > 1 {
		return envelopeProblem("Content-Type", "send one Content-Type")
	}
	if len(r.Trailer) > 0 || len(r.Header.Values("Trailer")) > 0 {
		return envelopeProblem("Trailer", "trailers are not accepted")
	}
	for rest := r.URL.RawQuery; rest != ""; {
		var pair string
		pair, rest, _ = strings.Cut(rest, "&")
		key, value, _ := strings.Cut(pair, "=")
		name, err := url.QueryUnescape(key)
		if _, verr := url.QueryUnescape(value); err != nil || verr != nil || strings.ContainsRune(pair, ';') {
			return envelopeProblem("query", "the query does not parse")
		}
		if methodOverride(name) {
			return envelopeProblem("_method", "a query parameter that rewrites the method is not accepted")
		}
	}
	return nil
}

// checkQueryNames refuses a query that gives a parameter declared as one
// value (single) more than once, or spells its name in another letter
// case: readers disagree on which of two values counts (Go takes the first,
// others the last), and one that folds case would read a parameter the
// check did not — on revoke-all, the session to keep.
func checkQueryNames(r *http.Request, single []string) *problem {
	if len(single) == 0 || r.URL.RawQuery == "" {
		return nil
	}
	for name, values := range r.URL.Query() {
		for _, declared := range single {
			switch {
			case name == declared && len(values) > 1:
				return envelopeProblem(declared, "give "+declared+" once")
			case name != declared && strings.EqualFold(name, declared):
				return envelopeProblem(declared, "spell "+declared+" as the document does")
			}
		}
	}
	return nil
}

// methodOverride says whether a query or body member name is read as
// _method by some framework: any letter case, escaped once more, with NULs
// dropped, and with ".", " " and "[" read as "_" and "[…]" cut off, as PHP
// reads parameter names.
func methodOverride(name string) bool {
	if again, err := url.QueryUnescape(name); err == nil {
		name = again
	}
	name = strings.ReplaceAll(name, "\x00", "")
	if i := strings.IndexByte(name, '['); i > 0 {
		name = name[:i]
	}
	name = strings.Map(func(r rune) rune {
		if r == '.' || r == ' ' || r == '[' || r == '+' {
			return '_'
		}
		return r
	}, name)
	bare := strings.TrimLeft(name, "_")
	return bare != name && strings.EqualFold(bare, "method")
}

func envelopeProblem(location, detail string) *problem {
	p := newProblem(kindInvalidRequest, detail)
	p.errors = []fieldError{{Location: location, Message: "not accepted"}}
	return p
}
