package ownidsessions

import (
	"bytes"
	"strings"
	"unicode"
	"unicode/utf8"
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
// segment non-empty and not ending with "." (so neither "." nor "..").
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
		// A trailing dot is dropped by some readers ("sessions."): not
		// the one spelling.
		if seg == "" || seg[len(seg)-1] == '.' {
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
func lenientReadings(escaped string) (readings [8]string, converged bool) {
	i := 0
	for _, splits := range []bool{true, false} {
		decoded, ok := decodeFully([]byte(escaped), splits)
		if !ok {
			return readings, false
		}
		for _, truncates := range []bool{true, false} {
			folded := foldRunes(decoded, splits, truncates)
			for _, removesDots := range []bool{true, false} {
				readings[i] = normalizeSegments(folded, removesDots)
				i++
			}
		}
	}
	return readings, true
}

// inSegmentSlash stands for a decoded "/" or "\" that does not separate
// segments in a reading.
const inSegmentSlash = '\x01'

// maxDecodeRounds bounds how often a path is percent-decoded. A path that
// still holds escapes after that many rounds is refused outright: no
// backend decodes so often, and each round costs a pass over the path.
const maxDecodeRounds = 8

// decodeFully percent-decodes until nothing decodes (a double encoding,
// %252f, is read as what a backend that decodes twice sees), then reads
// overlong UTF-8 as the ASCII it spells. ok is false when escapes remain
// after maxDecodeRounds.
func decodeFully(b []byte, decodedSlashSplits bool) ([]byte, bool) {
	for round := 0; ; round++ {
		var changed bool
		b, changed = percentDecode(b, decodedSlashSplits)
		if !changed {
			break
		}
		if round == maxDecodeRounds {
			return nil, false
		}
	}
	return foldOverlong(b), true
}

// foldRunes reads a decoded path rune by rune: "\" as "/" when decoded
// slashes split segments, the path ended at a NUL, "?" or "#" when it
// truncates, tabs, newlines, invisible format characters (soft hyphen,
// zero-width space) and combining marks dropped, letters folded to
// lower-case ASCII.
func foldRunes(b []byte, decodedSlashSplits, truncates bool) string {
	out := make([]byte, 0, len(b))
	for len(b) > 0 {
		if c := b[0]; c < utf8.RuneSelf {
			b = b[1:]
			switch {
			case c == '\\' && decodedSlashSplits:
				c = '/'
			case c == 0 || c == '?' || c == '#':
				if truncates {
					return string(out)
				}
			case c == '\t' || c == '\n' || c == '\r':
				continue // URL parsers (WHATWG) drop these
			case 'A' <= c && c <= 'Z':
				c += 'a' - 'A'
			}
			out = append(out, c)
			continue
		}
		r, size := utf8.DecodeRune(b)
		b = b[size:]
		if unicode.In(r, unicode.Cf, unicode.Mn) {
			continue // invisible: soft hyphen, zero-width space, combining accents, …
		}
		out = utf8.AppendRune(out, unicode.ToLower(asciiFold(r)))
	}
	return string(out)
}

// percentDecode decodes every %XX once. A decoded "/" or "\" becomes
// inSegmentSlash unless it separates segments in this reading.
func percentDecode(b []byte, decodedSlashSplits bool) ([]byte, bool) {
	out := make([]byte, 0, len(b))
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
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if (b[i] == 0xC0 || b[i] == 0xC1) && i+1 < len(b) && b[i+1]&0xC0 == 0x80 {
			out = append(out, (b[i]&0x1F)<<6|b[i+1]&0x3F)
			i++
			continue
		}
		// Three bytes spelling an ASCII character: 0xE0 0x80–0x81 …
		if b[i] == 0xE0 && i+2 < len(b) && (b[i+1] == 0x80 || b[i+1] == 0x81) && b[i+2]&0xC0 == 0x80 {
			out = append(out, (b[i+1]&0x3F)<<6|b[i+2]&0x3F)
			i += 2
			continue
		}
		out = append(out, b[i])
	}
	return out
}

// asciiFold maps a letter that some stack folds to ASCII onto that ASCII
// letter: fullwidth forms (width folding), and the letters whose case
// mapping or case-folding orbit holds an ASCII letter: U+017F ſ → s,
// U+0131 ı and U+0130 İ → i, U+212A Kelvin sign → k. Anything else is left
// as it is. (TestASCIIFoldIsComplete checks this list against Unicode's
// tables for every rune.)
func asciiFold(r rune) rune {
	switch {
	case 0xFF01 <= r && r <= 0xFF5E: // FULLWIDTH EXCLAMATION MARK … TILDE
		return r - 0xFF01 + '!'
	case r == 0x3000: // IDEOGRAPHIC SPACE
		return ' '
	case r == 0x017F:
		return 's'
	case r == 0x0131, r == 0x0130:
		return 'i'
	case r == 0x212A:
		return 'k'
	}
	return r
}

// normalizeSegments gives a path its segments without ";" parameters and
// empty segments, and without dot segments when removesDots (as RFC 3986
// §5.2.4 and servlet containers read them). One pass, one allocation.
func normalizeSegments(p string, removesDots bool) string {
	out := make([]byte, 0, len(p)+1) // "/seg" after "/seg"
	for rest := p; ; {
		seg, tail, more := strings.Cut(rest, "/")
		if i := strings.IndexByte(seg, ';'); i >= 0 {
			seg = seg[:i]
		}
		// Windows and suffix-matching frameworks ignore trailing dots and
		// spaces of a segment ("sessions." is "sessions").
		if t := strings.TrimRight(seg, ". "); t != "" && seg != "." && seg != ".." {
			seg = t
		}
		switch {
		case seg == "":
		case removesDots && seg == ".":
		case removesDots && seg == "..":
			if i := bytes.LastIndexByte(out, '/'); i >= 0 {
				out = out[:i] // the segment removed is never scanned again
			}
		default:
			out = append(append(out, '/'), seg...)
		}
		if !more {
			break
		}
		rest = tail
	}
	if len(out) == 0 {
		return "/"
	}
	return string(out)
}
