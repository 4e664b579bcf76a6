package redis

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/ownid-sessions/caddy-ownid-sessions/internal/redistest"
	"github.com/ownid-sessions/caddy-ownid-sessions/store"
)

// TestWaitReplicas: with wait_replicas 1, a write succeeds once the
// replica has it; while the replica is paused, the write is applied on the
// master but answered ErrOutcomeUnknown. WAIT runs on the connection that
// wrote: on any other, it would count the paused replica, which confirmed
// everything before the pause, and succeed. Refusals wait for nothing.
func TestWaitReplicas(t *testing.T) {
	master := redistest.Start(t, true)
	replica := redistest.StartReplica(t, master)
	// Long enough for a busy machine; each write with the replica paused
	// takes that long.
	st := provision(t, Store{URL: master.URL(), WaitReplicas: 1, WaitTimeout: caddy.Duration(time.Second)})
	ctx := context.Background()
	o := store.Owner{App: "/wait", Subject: "w"}
	now := time.Now().UTC().Truncate(time.Millisecond)
	fresh := func() store.Session {
		return store.Session{ID: store.NewID(), Created: now, LastActive: now, Timeout: time.Hour}
	}
	kept, err := st.Create(ctx, o, fresh(), 10, nil, now)
	if err != nil {
		t.Fatalf("create with the replica up: %v", err)
	}

	replica.Pause()
	s := fresh()
	if _, err := st.Create(ctx, o, s, 10, nil, now); !errors.Is(err, store.ErrOutcomeUnknown) {
		t.Fatalf("create with the replica paused: %v; want ErrOutcomeUnknown", err)
	}
	if _, err := st.Get(ctx, o, s.ID, now); err != nil {
		t.Fatalf("the unconfirmed create is not on the master: %v", err)
	}
	if _, err := st.Update(ctx, o, kept.ID, nil, nil, now); !errors.Is(err, store.ErrOutcomeUnknown) {
		t.Fatalf("update with the replica paused: %v; want ErrOutcomeUnknown", err)
	}
	if err := st.Delete(ctx, o, s.ID, nil, now); !errors.Is(err, store.ErrOutcomeUnknown) {
		t.Fatalf("delete with the replica paused: %v; want ErrOutcomeUnknown", err)
	}
	if _, err := st.DeleteAll(ctx, o, kept.ID, now); !errors.Is(err, store.ErrOutcomeUnknown) {
		t.Fatalf("delete all with the replica paused: %v; want ErrOutcomeUnknown", err)
	}
	// Nothing written, nothing to confirm: the refusal is the answer.
	if _, err := st.Update(ctx, o, "missing", nil, nil, now); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("update of a missing session with the replica paused: %v; want ErrNotFound", err)
	}
	if _, err := st.Update(ctx, o, kept.ID, nil, &store.IfMatch{Tags: []string{`"99"`}}, now); !errors.Is(err, store.ErrPreconditionFailed) {
		t.Fatalf("stale If-Match with the replica paused: %v; want ErrPreconditionFailed", err)
	}
	if _, err := st.Create(ctx, o, fresh(), 1, nil, now); !errors.Is(err, store.ErrTooManySessions) {
		t.Fatalf("create over the limit with the replica paused: %v; want ErrTooManySessions", err)
	}

	replica.Resume()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := st.Create(ctx, o, fresh(), 10, nil, now)
		if err == nil {
			break
		}
		if !errors.Is(err, store.ErrOutcomeUnknown) || time.Now().After(deadline) {
			t.Fatalf("create after the replica resumed: %v", err)
		}
	}
}

// TestWriteOutcome: a write that could not be sent fails plainly (503
// store-unavailable: nothing was written); one that was sent and got no
// answer in time may have been applied (ErrOutcomeUnknown), and is sent
// once: never again on its own, which could apply it twice.
func TestWriteOutcome(t *testing.T) {
	ctx := context.Background()
	o := store.Owner{Subject: "outcome"}
	now := time.Now()
	sess := store.Session{ID: store.NewID(), Created: now, LastActive: now, Timeout: time.Hour}
	timeout := caddy.Duration(300 * time.Millisecond)

	refused := provision(t, Store{URL: fmt.Sprintf("redis://127.0.0.1:%d/0", closedPort(t)), Timeout: timeout})
	if _, err := refused.Create(ctx, o, sess, 10, nil, now); err == nil || errors.Is(err, store.ErrOutcomeUnknown) {
		t.Fatalf("create on a refused connection: %v; want a plain error", err)
	}

	srv := silentServer(t)
	silent := provision(t, Store{URL: "redis://" + srv.addr + "/0", Timeout: timeout})
	if _, err := silent.Create(ctx, o, sess, 10, nil, now); !errors.Is(err, store.ErrOutcomeUnknown) {
		t.Fatalf("create without an answer: %v; want ErrOutcomeUnknown", err)
	}
	if _, err := silent.Update(ctx, o, sess.ID, nil, nil, now); !errors.Is(err, store.ErrOutcomeUnknown) {
		t.Fatalf("update without an answer: %v; want ErrOutcomeUnknown", err)
	}
	if _, err := silent.DeleteAll(ctx, o, "", now); !errors.Is(err, store.ErrOutcomeUnknown) {
		t.Fatalf("delete all without an answer: %v; want ErrOutcomeUnknown", err)
	}
	// Give a retry, if there were one, time to arrive.
	time.Sleep(2 * time.Duration(timeout))
	if n := srv.scripts.Load(); n != 3 {
		t.Fatalf("the server got %d scripts for 3 writes", n)
	}
}

// closedPort is a loopback port nothing listens on.
func closedPort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

// fakeServer speaks enough RESP to let a client connect, then counts the
// scripts it is sent and never answers them.
type fakeServer struct {
	addr    string
	scripts atomic.Int64
}

func silentServer(t *testing.T) *fakeServer {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeServer{addr: l.Addr().String()}
	var mu sync.Mutex
	var conns []net.Conn
	var wg sync.WaitGroup
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				f.serve(c)
			}()
		}
	}()
	return f
}

func (f *fakeServer) serve(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	for {
		args, err := readCommand(r)
		if err != nil {
			return
		}
		switch strings.ToUpper(args[0]) {
		case "EVAL", "EVALSHA":
			f.scripts.Add(1) // and no answer
		case "HELLO":
			c.Write([]byte("-ERR unknown command 'HELLO'\r\n"))
		default:
			c.Write([]byte("+OK\r\n"))
		}
	}
}

// readCommand reads one RESP array of bulk strings.
func readCommand(r *bufio.Reader) ([]string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "*")))
	if err != nil || n < 1 {
		return nil, fmt.Errorf("not a command: %q", line)
	}
	args := make([]string, n)
	for i := range args {
		line, err := r.ReadString('\n')
		if err != nil {
			return nil, err
		}
		size, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "$")))
		if err != nil {
			return nil, fmt.Errorf("not a bulk string: %q", line)
		}
		buf := make([]byte, size+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		args[i] = string(buf[:size])
	}
	return args, nil
}
