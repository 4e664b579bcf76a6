package ownidsessions

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/ownid-sessions/caddy-ownid-sessions/store"
)

// List pages: GET {prefix}/accounts/sessions?limit=<n>&cursor=<c>. The list
// is in the store's order (most recently active first, then by id); a
// cursor names the last session of the page before, so a page starts right
// after it whatever was created or deleted meanwhile. A cursor is opaque and
// signed: an HMAC over the position and the owner it was made for, so that
// an altered cursor, or one of another account or app, is refused.

const (
	// cursorVersion is the first byte of every cursor's content.
	cursorVersion = 1
	// cursorMACSize is the part of the HMAC-SHA256 a cursor carries.
	cursorMACSize = 16
	// minCursorSecret is the shortest cursor_secret accepted.
	minCursorSecret = 32
)

// processCursorKey signs cursors when no cursor_secret is set: random,
// made once per process, so it survives config reloads.
var processCursorKey = sync.OnceValue(func() []byte {
	k := make([]byte, 32)
	_, _ = rand.Read(k) // crypto/rand.Read never fails (Go 1.24+)
	return k
})

// cursorKey is the key of cursor_secret (after its placeholders are
// replaced), or the process's own when none is set.
func cursorKey(secret string) ([]byte, error) {
	if secret == "" {
		return processCursorKey(), nil
	}
	if len(secret) < minCursorSecret {
		return nil, fmt.Errorf("cursor_secret: must be at least %d bytes, got %d", minCursorSecret, len(secret))
	}
	return []byte(secret), nil
}

// cursorMAC signs a cursor's content for owner.
func cursorMAC(key []byte, owner Owner, content []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("ownid_sessions list cursor\x00"))
	parts, _ := owner.AppendBinary(nil)
	m.Write(parts)
	m.Write(content)
	return m.Sum(nil)[:cursorMACSize]
}

// encodeCursor makes the cursor of the page after s.
func encodeCursor(key []byte, owner Owner, s *store.Session) string {
	b := make([]byte, 0, 1+8+len(s.ID)+cursorMACSize)
	b = append(b, cursorVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(s.LastActive.UnixMilli()))
	b = append(b, s.ID...)
	b = append(b, cursorMAC(key, owner, b)...)
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodeCursor reads a cursor made for owner: the position it names, as a
// session to start after.
func decodeCursor(key []byte, owner Owner, c string) (store.Session, bool) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || len(b) < 1+8+1+cursorMACSize || b[0] != cursorVersion {
		return store.Session{}, false
	}
	content, mac := b[:len(b)-cursorMACSize], b[len(b)-cursorMACSize:]
	if !hmac.Equal(mac, cursorMAC(key, owner, content)) {
		return store.Session{}, false
	}
	id := string(content[9:])
	if !validSessionID(id) {
		return store.Session{}, false
	}
	at := time.UnixMilli(int64(binary.BigEndian.Uint64(content[1:9]))).UTC()
	return store.Session{ID: id, LastActive: at}, true
}

// listPage reads the page query of a list: limit (0 for no limit) and the
// position to start after (nil for the first page).
func (h *Handler) listPage(query url.Values, owner Owner) (limit int, after *store.Session, p *problem) {
	if v := query.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			// The embedded document refuses these already; a user's
			// document may not declare limit.
			p = newProblem(kindInvalidRequest, "limit must be a whole number from 1 on")
			p.errors = []fieldError{{Location: "limit", Message: "not a positive integer"}}
			return 0, nil, p
		}
		limit = n
	}
	if c := query.Get("cursor"); c != "" {
		s, ok := decodeCursor(h.cursorKey, owner, c)
		if !ok {
			p = newProblem(kindInvalidCursor, "the cursor is not one this server gave for this account and app: copy it from the Link header of the previous page")
			p.errors = []fieldError{{Location: "cursor", Message: "not a valid cursor"}}
			return 0, nil, p
		}
		after = &s
	}
	return limit, after, nil
}

// pageOf cuts the page out of sessions, which are in the store's order:
// those after after (all, when it is nil), at most limit of them (all,
// when it is 0). more says whether sessions remain after the page.
func pageOf(sessions []store.Session, after *store.Session, limit int) (page []store.Session, more bool) {
	start := 0
	if after != nil {
		for start < len(sessions) && store.Compare(sessions[start], *after) <= 0 {
			start++
		}
	}
	page = sessions[start:]
	if limit > 0 && len(page) > limit {
		return page[:limit], true
	}
	return page, false
}

// nextLink is the Link header of the page after last (RFC 8288): a path on
// this host, which is canonical and so holds unreserved characters only.
func nextLink(path string, limit int, cursor string) string {
	return "<" + path + "?limit=" + strconv.Itoa(limit) + "&cursor=" + cursor + `>; rel="next"`
}
