package store

import (
	"slices"
	"strings"
)

// IfMatch is the precondition of a write: a parsed If-Match header (RFC 9110
// §13.1.1). A nil *IfMatch is no precondition: it matches every ETag. One
// that is neither Any nor names a tag matches none.
type IfMatch struct {
	// Any is "*": any current representation.
	Any bool
	// Tags are the strong entity tags named, quotes included.
	Tags []string
}

// ParseIfMatch reads the If-Match header's values; nil when there are none.
// Weak tags are left out: If-Match uses the strong comparison, so they never
// match.
func ParseIfMatch(values []string) *IfMatch {
	if len(values) == 0 {
		return nil
	}
	m := &IfMatch{}
	for _, v := range values {
		for _, tag := range strings.Split(v, ",") {
			tag = strings.TrimSpace(tag)
			switch {
			case tag == "*":
				m.Any = true
			case len(tag) >= 2 && tag[0] == '"' && tag[len(tag)-1] == '"':
				m.Tags = append(m.Tags, tag)
			}
		}
	}
	return m
}

// Matches says whether etag, a session's current ETag, satisfies the
// precondition.
func (m *IfMatch) Matches(etag string) bool {
	return m == nil || m.Any || slices.Contains(m.Tags, etag)
}
