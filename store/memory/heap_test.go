package memory

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ownid-sessions/caddy-ownid-sessions/store"
)

// TestBytesPerSession measures the memory the table takes per session with a
// 256-byte payload, and fails if it grows past 1 KiB (1 GiB for a million).
func TestBytesPerSession(t *testing.T) {
	const n = 100_000
	payload := json.RawMessage(`{"p":"` + strings.Repeat("x", 248) + `"}`)
	before := liveHeap()
	tbl := newSessionTable()
	for i := 0; i < n; i++ {
		o := store.Owner{App: "/app", Subject: "account-" + strconv.Itoa(i/10)}
		s := store.Session{ID: store.NewID(), Created: t0, LastActive: t0, Timeout: time.Hour, Payload: append(json.RawMessage(nil), payload...)}
		if _, err := tbl.create(o, s, 100, tableLimits{n, 1 << 40}, t0); err != nil {
			t.Fatal(err)
		}
	}
	perSession := float64(liveHeap()-before) / n
	t.Logf("%.0f bytes of heap per session (256-byte payload, 10 sessions per account, %d sessions)", perSession, n)
	if perSession > 1024 {
		t.Errorf("%.0f bytes per session, over the 1 KiB budget", perSession)
	}
	runtime.KeepAlive(tbl)
}

// BenchmarkGetLatency: GET latency in tables of a thousand and a million
// sessions (256-byte payloads, 10 per account), idle and while a sweep walks
// the table over and over. Reports p50 and p99 in ns. Run by make bench.
func BenchmarkGetLatency(b *testing.B) {
	payload := json.RawMessage(`{"p":"` + strings.Repeat("x", 248) + `"}`)
	type ref struct {
		o  store.Owner
		id string
	}
	for _, n := range []int{1_000, 1_000_000} {
		tbl := newSessionTable()
		refs := make([]ref, 0, n)
		for i := 0; i < n; i++ {
			o := store.Owner{App: "/app", Subject: "account-" + strconv.Itoa(i/10)}
			s, _ := tbl.create(o, store.Session{ID: store.NewID(), Created: t0, LastActive: t0, Timeout: time.Hour, Payload: payload}, 100, tableLimits{n, 1 << 40}, t0)
			refs = append(refs, ref{o, s.ID})
		}
		runtime.GC()
		measure := func(b *testing.B) {
			lat := make([]time.Duration, 0, 1<<16)
			i := 0
			for b.Loop() {
				r := refs[(i*7919)%n]
				i++
				// The keys arrive with the request, fresh in cache: only
				// the table's own memory is cold.
				o := store.Owner{App: strings.Clone(r.o.App), Subject: strings.Clone(r.o.Subject)}
				id := strings.Clone(r.id)
				start := time.Now()
				if _, err := tbl.get(o, id, t0); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2]), "p50-ns")
			b.ReportMetric(float64(lat[len(lat)*99/100]), "p99-ns")
		}
		b.Run(fmt.Sprintf("sessions=%d/idle", n), measure)
		b.Run(fmt.Sprintf("sessions=%d/sweeping", n), func(b *testing.B) {
			stop, stopped := make(chan struct{}), make(chan struct{})
			go func() {
				defer close(stopped)
				for {
					select {
					case <-stop:
						return
					default:
						tbl.sweep(t0) // nothing expires: the walk alone
					}
				}
			}()
			measure(b)
			close(stop)
			<-stopped
		})
	}
}

// TestStoredBytesBoundTheHeap checks that max_bytes bounds memory rather
// than estimates it: in the costliest layout (one session per owner, as a
// client spraying app prefixes makes), the heap each session takes is at
// most what it counts against the budget.
func TestStoredBytesBoundTheHeap(t *testing.T) {
	for _, c := range []struct{ sessions, payload int }{{50_000, 100}, {50_000, 1000}, {4_000, 40_000}} {
		payload := json.RawMessage(`{"p":"` + strings.Repeat("x", c.payload) + `"}`)
		before := liveHeap()
		tbl := newSessionTable()
		for i := 0; i < c.sessions; i++ {
			o := store.Owner{App: "/spray" + strconv.Itoa(i), Issuer: "https://issuer.example", Subject: "sprayer"}
			s := store.Session{ID: store.NewID(), Created: t0, LastActive: t0, Timeout: time.Hour, Payload: bytes.Clone(payload)}
			if _, err := tbl.create(o, s, 100, tableLimits{c.sessions, 1 << 40}, t0); err != nil {
				t.Fatal(err)
			}
		}
		heap := float64(liveHeap()-before) / float64(c.sessions)
		counted := float64(tbl.bytes.Load()) / float64(c.sessions)
		t.Logf("one session per owner, %d-byte payloads: %.0f bytes of heap per session, %.0f counted", len(payload), heap, counted)
		if heap > counted {
			t.Errorf("%d-byte payloads: a session takes %.0f bytes of heap but counts %.0f against max_bytes", len(payload), heap, counted)
		}
		runtime.KeepAlive(tbl)
	}
}

// BenchmarkFullBudgetRSS fills a table to the default max_bytes (1 GiB)
// with 60 KB payloads spread over as many apps as a sprayer would use, then
// reports the heap and the process's resident memory. Run by make bench;
// one iteration is the whole fill.
func BenchmarkFullBudgetRSS(b *testing.B) {
	payload := json.RawMessage(`{"p":"` + strings.Repeat("x", 60_000) + `"}`)
	for b.Loop() {
		before := liveHeap()
		tbl := newSessionTable()
		limits := tableLimits{live: defaultMaxLiveSessions, bytes: defaultMaxBytes}
		n := 0
		for ; ; n++ {
			o := store.Owner{App: "/spray" + strconv.Itoa(n), Issuer: "https://issuer.example", Subject: "sprayer"}
			s := store.Session{ID: store.NewID(), Created: t0, LastActive: t0, Timeout: time.Hour, Payload: bytes.Clone(payload)}
			if _, err := tbl.create(o, s, 100, limits, t0); err != nil {
				if !errors.Is(err, store.ErrStoreFull) {
					b.Fatal(err)
				}
				break
			}
		}
		heap := liveHeap() - before
		b.ReportMetric(float64(n), "sessions")
		b.ReportMetric(float64(tbl.bytes.Load())/(1<<20), "counted-MiB")
		b.ReportMetric(float64(heap)/(1<<20), "heap-MiB")
		b.ReportMetric(float64(residentKiB())/1024, "rss-MiB")
		runtime.KeepAlive(tbl)
	}
}

// liveHeap collects garbage and returns the bytes of heap still in use.
func liveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// residentKiB is the process's resident set size now (VmRSS), in KiB.
func residentKiB() int {
	data, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return kb
		}
	}
	return 0
}

// BenchmarkMillionSessionsRSS holds a million sessions with 256-byte
// payloads (10 per account, as BenchmarkGetLatency) and reports the heap and
// the resident memory of the process (VmRSS after a collection; the test
// binary's own baseline is a few MiB). Run by make bench; one iteration is
// the whole fill.
func BenchmarkMillionSessionsRSS(b *testing.B) {
	payload := json.RawMessage(`{"p":"` + strings.Repeat("x", 248) + `"}`)
	for b.Loop() {
		before := liveHeap()
		rssBefore := residentKiB()
		tbl := newSessionTable()
		const n = 1_000_000
		for i := range n {
			o := store.Owner{App: "/app", Issuer: "https://issuer.example", Subject: "account-" + strconv.Itoa(i/10)}
			s := store.Session{ID: store.NewID(), Created: t0, LastActive: t0, Timeout: time.Hour, Payload: bytes.Clone(payload)}
			if _, err := tbl.create(o, s, 100, tableLimits{n, 1 << 40}, t0); err != nil {
				b.Fatal(err)
			}
		}
		// RSS as it stands after the fill (with the collector's headroom),
		// then once the freed pages are handed back.
		runtime.GC()
		b.ReportMetric(float64(residentKiB())/1024, "rss-MiB")
		debug.FreeOSMemory()
		b.ReportMetric(float64(liveHeap()-before)/n, "heap-B/session")
		b.ReportMetric(float64(residentKiB())/1024, "rss-returned-MiB")
		b.ReportMetric(float64(rssBefore)/1024, "rss-before-MiB")
		runtime.KeepAlive(tbl)
	}
}

// BenchmarkGetLatencyFloor is the floor under any layout of the table: the
// same GETs as BenchmarkGetLatency (same keys in the same order, the
// owner's digest and the id's key computed, a shard's read lock taken, the
// record copied out and its expiry checked), but the record is found by its
// position in a slice of pointers, so no hash table is probed at all. Its
// ratio of p99 at a million to p99 at a thousand is what a GET costs at a
// million for the one load no table can avoid, the record's (cold, and on a
// virtual machine without huge pages a TLB miss with a nested page walk):
// a real table adds its own probe at both sizes, which brings the ratio
// down only as far as the probe is slow even when it is hot. The figures
// are in the README.
func BenchmarkGetLatencyFloor(b *testing.B) {
	payload := json.RawMessage(`{"p":"` + strings.Repeat("x", 248) + `"}`)
	for _, n := range []int{1_000, 1_000_000} {
		b.Run(fmt.Sprintf("sessions=%d", n), func(b *testing.B) {
			owners := make([]store.Owner, n)
			records := make([]*store.Session, n)
			for i := range n {
				owners[i] = store.Owner{App: "/app", Subject: "account-" + strconv.Itoa(i/10)}
				records[i] = &store.Session{ID: store.NewID(), Created: t0, LastActive: t0, Timeout: time.Hour, Payload: slices.Clone(payload)}
			}
			var shards [256]tableShard
			runtime.GC()
			lat := make([]time.Duration, 0, 1<<16)
			var found int
			i := 0
			for b.Loop() {
				j := (i * 7919) % n
				i++
				o := store.Owner{App: strings.Clone(owners[j].App), Subject: strings.Clone(owners[j].Subject)}
				id := strings.Clone(records[j].ID)
				start := time.Now()
				d := digestOf(o)
				k := keyOf(d, idKeyOf(id))
				sh := &shards[d[0]]
				sh.mu.RLock()
				s := *records[j]
				sh.mu.RUnlock()
				if !s.Expired(t0) && !k.hashed {
					found++
				}
				lat = append(lat, time.Since(start))
			}
			if found != i {
				b.Fatalf("%d of %d records found", found, i)
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2]), "p50-ns")
			b.ReportMetric(float64(lat[len(lat)*99/100]), "p99-ns")
		})
	}
}
