package ownidsessions

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
)

// siteConfig is a serve-mode site with the given global options and handler
// body, for the reliability tests.
func siteConfig(global, handler string) string {
	return `
{
` + testGlobals + `
` + global + `
}
http://localhost:9080 {
	ownid_sessions {
` + handler + `
	}
}
`
}

// TestNoLostUpdate: many writers do read-modify-write on one session with
// If-Match through a real Caddy; the counter ends equal to the number of
// acknowledged writes, and nothing answers 5xx.
func TestNoLostUpdate(t *testing.T) {
	tc := caddytest.NewTester(t)
	tc.InitServer(siteConfig("grace_period 1ns", `
		jwt {
			alg HS256
			secret {env.OWNID_TEST_SECRET}
		}
		store memory lost-update`), "caddyfile")
	tok := tokenFor(t, "storm")
	s, _ := create(t, tc, "/storm", tok, `{"payload":{"n":0}}`)
	url := base + "/storm/accounts/sessions/" + s.ID

	const writers, rounds = 8, 40
	var acked, conflicts, attempts atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < rounds; i++ {
				req, _ := http.NewRequest("GET", url, nil)
				req.Header.Set("Authorization", "Bearer "+tok)
				resp, err := tc.Client.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				var cur struct {
					Payload struct{ N int } `json:"payload"`
				}
				json.NewDecoder(resp.Body).Decode(&cur)
				resp.Body.Close()
				etag := resp.Header.Get("ETag")

				body := fmt.Sprintf(`{"payload":{"n":%d}}`, cur.Payload.N+1)
				req, _ = http.NewRequest("PUT", url, strings.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+tok)
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("If-Match", etag)
				resp, err = tc.Client.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				attempts.Add(1)
				switch resp.StatusCode {
				case 200:
					acked.Add(1)
				case 412:
					conflicts.Add(1)
				default:
					t.Errorf("PUT answered %d", resp.StatusCode)
				}
			}
		}()
	}
	wg.Wait()
	var final sessionOut
	call(t, tc, request{method: "GET", path: "/storm/accounts/sessions/" + s.ID, token: tok}).json(t, &final)
	n := int64(final.Payload["n"].(float64))
	t.Logf("writes attempted %d, acknowledged %d, refused with 412 %d, counter %d", attempts.Load(), acked.Load(), conflicts.Load(), n)
	if n != acked.Load() || acked.Load() == 0 {
		t.Fatalf("counter %d, acknowledged writes %d: an update was lost", n, acked.Load())
	}
}

// TestReloads: sessions survive reloads that change keys, limits and
// timeouts; a request in flight during a reload completes; each config's
// goroutines end with it.
func TestReloads(t *testing.T) {
	configA := siteConfig("grace_period 10s", `
		jwt {
			alg HS256
			secret {env.OWNID_TEST_SECRET}
		}
		store memory reload-test
		max_sessions 100
		session_timeout 10m`)
	configB := siteConfig("grace_period 10s", fmt.Sprintf(`
		jwt {
			alg HS256 RS256
			secret {env.OWNID_TEST_SECRET}
			key %s
			leeway 5s
		}
		store memory reload-test {
			sweep_interval 30s
			max_live_sessions 5000
		}
		max_sessions 5
		session_timeout 1h`, testKeys.RSAPEM))
	tc := caddytest.NewTester(t)
	tc.InitServer(configA, "caddyfile")
	tok := tokenFor(t, "reloader")
	s, r := create(t, tc, "/re", tok, `{"payload":{"v":1}}`)
	etag := r.header.Get("ETag")

	// A PUT whose body is still arriving while the config is replaced.
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("PUT", base+"/re/accounts/sessions/"+s.ID, pr)
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	inflight := make(chan int, 1)
	go func() {
		resp, err := tc.Client.Do(req)
		if err != nil {
			t.Error(err)
			inflight <- 0
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		inflight <- resp.StatusCode
	}()
	pw.Write([]byte(`{"payload":`))
	reloaded := make(chan struct{})
	go func() {
		tc.InitServer(configB, "caddyfile")
		close(reloaded)
	}()
	time.Sleep(300 * time.Millisecond)
	pw.Write([]byte(`{"v":2}}`))
	pw.Close()
	if status := <-inflight; status != 200 {
		t.Fatalf("request in flight during the reload: %d", status)
	}
	<-reloaded

	// The session, its write and its ETag are all there under config B; the
	// RS256 key of config B works.
	r = call(t, tc, request{method: "GET", path: "/re/accounts/sessions/" + s.ID, token: sign(t, "RS256", claimsFor("reloader"))})
	if r.status != 200 || !bytes.Contains(r.body, []byte(`"v":2`)) || r.header.Get("ETag") == etag {
		t.Fatalf("after reload: %d %s (etag %q, was %q)", r.status, r.body, r.header.Get("ETag"), etag)
	}

	// Goroutines across reloads: alternate the two configs; every config's
	// sweeper and servers must end with it.
	settle := func() int {
		tc.Client.CloseIdleConnections()
		http.DefaultClient.CloseIdleConnections()
		last, stable := -1, 0
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && stable < 5; {
			runtime.GC()
			n := runtime.NumGoroutine()
			if n == last {
				stable++
			} else {
				last, stable = n, 0
			}
			time.Sleep(100 * time.Millisecond)
		}
		return last
	}
	before := settle()
	const reloads = 10
	for i := 0; i < reloads; i++ {
		cfg := configA
		if i%2 == 1 {
			cfg = configB
		}
		tc.InitServer(cfg, "caddyfile")
		if r := call(t, tc, request{method: "GET", path: "/re/accounts/sessions/" + s.ID, token: tok}); r.status != 200 {
			t.Fatalf("reload %d lost the session: %d", i, r.status)
		}
	}
	after := settle()
	t.Logf("goroutines before %d reloads: %d, after: %d", reloads, before, after)
	if after-before >= reloads/2 {
		t.Fatalf("goroutines grew from %d to %d over %d reloads", before, after, reloads)
	}
}

// rawExchange sends raw bytes on a new connection, then reads one answer.
// The write side is closed after sending when closeWrite is set.
func rawExchange(t *testing.T, raw string, closeWrite bool, pace time.Duration) (int, []byte) {
	t.Helper()
	conn, err := net.Dial("tcp", "127.0.0.1:9080")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if pace > 0 {
		for i := 0; i < len(raw); i++ {
			if _, err := conn.Write([]byte{raw[i]}); err != nil {
				break
			}
			if i > strings.Index(raw, "\r\n\r\n") {
				time.Sleep(pace)
			}
		}
	} else {
		conn.Write([]byte(raw))
	}
	if closeWrite {
		conn.(*net.TCPConn).CloseWrite()
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

func rawRequest(method, path, token, headers, body string) string {
	return method + " " + path + " HTTP/1.1\r\nHost: localhost:9080\r\nAuthorization: Bearer " + token +
		"\r\nContent-Type: application/json\r\n" + headers + "\r\n" + body
}

// peakRSS is the process's peak resident set size, from /proc.
func peakRSS() string {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			return strings.TrimSpace(strings.TrimPrefix(line, "VmHWM:"))
		}
	}
	return "unknown"
}

// TestHostileBodies: each kind of hostile body gets its documented 4xx,
// nothing is stored from it, the server stays healthy and the heap stays
// bounded.
func TestHostileBodies(t *testing.T) {
	tc := caddytest.NewTester(t)
	tc.InitServer(siteConfig(`grace_period 1ns
	servers {
		timeouts {
			read_body 1s
		}
	}`, `
		max_body 64KiB
		jwt {
			alg HS256
			secret {env.OWNID_TEST_SECRET}
		}
		store memory hostile`), "caddyfile")
	tok := tokenFor(t, "hostile-body")
	s, created := create(t, tc, "/hb", tok, `{"payload":{"kept":true}}`)
	item := "/hb/accounts/sessions/" + s.ID

	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)

	deep := `{"payload":` + strings.Repeat(`{"a":`, 10000) + `1` + strings.Repeat(`}`, 10000) + `}`
	tests := []struct {
		name   string
		body   string
		status int
		kind   problemKind
		create bool // POST a new session rather than PUT the existing one
	}{
		{"10000 levels of nesting", deep, 400, kindInvalidRequest, false},
		{"65 levels of arrays", `{"payload":{"a":` + strings.Repeat("[", 65) + strings.Repeat("]", 65) + `}}`, 400, kindInvalidRequest, false},
		{"number beyond float64", `{"payload":{"n":1e999999}}`, 400, kindInvalidRequest, false},
		{"timeout beyond int64", `{"payload":{},"timeout":99999999999999999999999}`, 400, kindInvalidRequest, true},
		{"invalid UTF-8", "{\"payload\":{\"s\":\"\xc3\x28\"}}", 400, kindMalformedJSON, false},
		{"duplicate keys", `{"payload":{},"payload":[]}`, 400, kindInvalidRequest, false},
		{"duplicate keys inside the payload", `{"payload":{"a":1,"a":2}}`, 400, kindInvalidRequest, false},
		{"two JSON values", `{"payload":{}}{"payload":{}}`, 400, kindMalformedJSON, false},
		{"over max_body", `{"payload":{"x":"` + strings.Repeat("x", 70<<10) + `"}}`, 413, kindBodyTooLarge, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rq := request{method: "PUT", path: item, token: tok, body: tt.body}
			if tt.create {
				rq.method, rq.path = "POST", "/hb/accounts/sessions"
			}
			r := call(t, tc, rq)
			if r.status != tt.status {
				t.Fatalf("%d, want %d: %.200s", r.status, tt.status, r.body)
			}
			if p := r.problem(t); p.Type != tt.kind.typeURI() {
				t.Errorf("type %s, want %s", p.Type, tt.kind.typeURI())
			}
		})
	}

	// A huge integer that float64 can hold (imprecisely) is a valid payload,
	// stored byte for byte.
	big := `{"n":123456789012345678901234567890}`
	r := call(t, tc, request{method: "POST", path: "/hb/accounts/sessions", token: tok, body: `{"payload":` + big + `}`})
	if r.status != 201 || !bytes.Contains(r.body, []byte(big)) {
		t.Errorf("huge integer: %d %s", r.status, r.body)
	}

	raw := []struct {
		name     string
		request  string
		close    bool
		pace     time.Duration
		status   int
		problem  bool
		wantKind problemKind
	}{
		{"Content-Length larger than the body", rawRequest("PUT", item, tok, "Content-Length: 500\r\n", `{"payload":{}}`), true, 0, 400, true, kindInvalidRequest},
		{"Content-Length smaller than the body", rawRequest("PUT", item, tok, "Content-Length: 5\r\n", `{"payload":{}}`), false, 0, 400, true, kindMalformedJSON},
		{"chunked over max_body", rawRequest("PUT", item, tok, "Transfer-Encoding: chunked\r\n", chunked(strings.Repeat("a", 70<<10))), false, 0, 413, true, kindBodyTooLarge},
		{"slow but complete body", rawRequest("PUT", item, tok, "Content-Length: 25\r\n", `{"payload":{"slow":true}}`), false, 20 * time.Millisecond, 200, false, 0},
		{"body that stalls", rawRequest("PUT", item, tok, "Content-Length: 100\r\n", `{"payload":`), false, 0, 408, true, kindBodyTimeout},
	}
	for _, tt := range raw {
		t.Run(tt.name, func(t *testing.T) {
			status, body := rawExchange(t, tt.request, tt.close, tt.pace)
			if status != tt.status {
				t.Fatalf("%d, want %d: %.200s", status, tt.status, body)
			}
			if tt.problem && !bytes.Contains(body, []byte(`"type":"`+tt.wantKind.typeURI()+`"`)) {
				t.Errorf("body %s, want type %s", body, tt.wantKind.typeURI())
			}
		})
	}

	// Healthy afterwards, and nothing but the slow PUT changed the session.
	r = call(t, tc, request{method: "GET", path: item, token: tok})
	if r.status != 200 || !bytes.Contains(r.body, []byte(`"slow":true`)) || r.header.Get("ETag") == created.header.Get("ETag") {
		t.Fatalf("session after the hostile bodies: %d %s etag %s", r.status, r.body, r.header.Get("ETag"))
	}
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	growth := int64(after.HeapInuse) - int64(before.HeapInuse)
	t.Logf("heap in use %d -> %d bytes (%+d); peak RSS of the test process %s", before.HeapInuse, after.HeapInuse, growth, peakRSS())
	if growth > 32<<20 {
		t.Errorf("heap grew by %d bytes over the hostile bodies", growth)
	}
}

// chunked encodes body in 4 KiB chunks.
func chunked(body string) string {
	var b strings.Builder
	for len(body) > 0 {
		n := min(4096, len(body))
		b.WriteString(strconv.FormatInt(int64(n), 16) + "\r\n" + body[:n] + "\r\n")
		body = body[n:]
	}
	b.WriteString("0\r\n\r\n")
	return b.String()
}
