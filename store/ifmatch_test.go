package store

import "testing"

func TestIfMatchParsing(t *testing.T) {
	tests := []struct {
		header []string
		etag   string
		want   bool
	}{
		{nil, `"1"`, true},
		{[]string{`"1"`}, `"1"`, true},
		{[]string{`"2", "1"`}, `"1"`, true},
		{[]string{`"2"`, `"1"`}, `"1"`, true},
		{[]string{`*`}, `"9"`, true},
		{[]string{`W/"1"`}, `"1"`, false},
		{[]string{`1`}, `"1"`, false},
		{[]string{``}, `"1"`, false},
		{[]string{`"2"`}, `"1"`, false},
	}
	for _, tt := range tests {
		if got := ParseIfMatch(tt.header).Matches(tt.etag); got != tt.want {
			t.Errorf("If-Match %q vs %s: %v, want %v", tt.header, tt.etag, got, tt.want)
		}
	}
}

// TestIfMatchLiterals: what a store's own tests build by hand means what
// the parsed header would.
func TestIfMatchLiterals(t *testing.T) {
	var none *IfMatch
	for _, tt := range []struct {
		m    *IfMatch
		etag string
		want bool
	}{
		{none, `"1"`, true},
		{&IfMatch{}, `"1"`, false},
		{&IfMatch{Any: true}, `"1"`, true},
		{&IfMatch{Tags: []string{`"1"`}}, `"1"`, true},
		{&IfMatch{Tags: []string{`"1"`}}, `"2"`, false},
	} {
		if got := tt.m.Matches(tt.etag); got != tt.want {
			t.Errorf("%+v vs %s: %v, want %v", tt.m, tt.etag, got, tt.want)
		}
	}
}
