package ownidsessions

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
	"time"

	"github.com/ownid-sessions/caddy-ownid-sessions/store"
)

// maxIdempotencyKey bounds the Idempotency-Key header's value.
const maxIdempotencyKey = 255

// idempotency reads a create's Idempotency-Key header (IETF httpapi draft):
// nil without one. The key is a structured-field string ("…", RFC 8941);
// a bare token of visible ASCII is accepted too, as many clients send one.
// The request's fingerprint is the SHA-256 of its body as sent, so a retry
// must send the same bytes.
func (h *Handler) idempotency(r *http.Request, body *requestBody) (*store.Idempotency, *problem) {
	values := r.Header.Values("Idempotency-Key")
	if len(values) == 0 {
		return nil, nil
	}
	key, ok := "", len(values) == 1
	if ok {
		key, ok = parseIdempotencyKey(values[0])
	}
	if !ok {
		p := newProblem(kindInvalidRequest, "Idempotency-Key must be one quoted string of 1 to 255 printable ASCII characters")
		p.errors = []fieldError{{Location: "Idempotency-Key", Message: "not a structured-field string"}}
		return nil, p
	}
	sum := sha256.Sum256(body.raw)
	return &store.Idempotency{Key: key, Fingerprint: hex.EncodeToString(sum[:]), TTL: time.Duration(h.IdempotencyTTL)}, nil
}

// parseIdempotencyKey reads an sf-string ("a\"b"), or a bare token of
// visible ASCII; it refuses empty keys and keys over 255 characters.
func parseIdempotencyKey(v string) (string, bool) {
	v = strings.Trim(v, " \t")
	if !strings.HasPrefix(v, `"`) {
		for i := 0; i < len(v); i++ {
			if v[i] <= ' ' || v[i] >= 0x7f || v[i] == '"' || v[i] == '\\' || v[i] == ',' {
				return "", false
			}
		}
		return v, v != "" && len(v) <= maxIdempotencyKey
	}
	var b strings.Builder
	for i := 1; i < len(v); i++ {
		c := v[i]
		switch {
		case c == '\\':
			i++
			if i >= len(v) || (v[i] != '"' && v[i] != '\\') {
				return "", false
			}
			b.WriteByte(v[i])
		case c == '"':
			key := b.String()
			return key, i == len(v)-1 && key != "" && len(key) <= maxIdempotencyKey
		case c < ' ' || c >= 0x7f:
			return "", false
		default:
			b.WriteByte(c)
		}
	}
	return "", false // no closing quote
}
