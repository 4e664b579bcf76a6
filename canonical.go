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
