// Package redistest runs throwaway redis-server processes for tests, from
// Debian's redis-server package; .ci/run installs it. Without the binary, a
// test that asks for a server fails under CI (CI set) and skips elsewhere,
// saying so.
package redistest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Server is a redis-server on a free loopback port, with its own directory,
// stopped when the test that started it ends.
type Server struct {
	t        testing.TB
	port     int
	dir      string
	cmd      *exec.Cmd
	exited   chan struct{} // closed when cmd has ended
	args     []string
	password string // what start's PING authenticates with; "" for none
}

// binary is the path of a Redis program, or t fails (under CI) or skips.
func binary(t testing.TB, name string) string {
	t.Helper()
	bin, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not installed; .ci/run installs Debian's redis-server package", name)
		}
		t.Skipf("%s is not installed (apt-get install redis-server); the Redis store is untested here", name)
	}
	return bin
}

// handedOut are the ports freePort has returned in this process.
var handedOut = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// freePort is a loopback port nothing listens on now, and that it has not
// returned before in this process (a port just closed may come back at
// once, and two servers asked for together would then collide).
func freePort(t testing.TB) int {
	t.Helper()
	handedOut.Lock()
	defer handedOut.Unlock()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !handedOut.ports[port] {
			handedOut.ports[port] = true
			return port
		}
	}
	t.Fatal("no new free port")
	return 0
}

// baseArgs are the arguments every data node of the tests starts with:
// loopback only, no snapshots, and, when persistent, an append-only file
// written before each answer, so Kill loses nothing acknowledged.
func baseArgs(port int, dir string, persistent bool) []string {
	args := []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
		"--save", "", "--protected-mode", "no", "--daemonize", "no", "--loglevel", "warning",
		// A replica syncs at once instead of waiting for more replicas.
		"--repl-diskless-sync-delay", "0",
		// DEBUG SLEEP makes a Redis that stops answering.
		"--enable-debug-command", "local"}
	if persistent {
		return append(args, "--appendonly", "yes", "--appendfsync", "always")
	}
	return append(args, "--appendonly", "no")
}

// startServer runs redis-server with args (the binary first) for t, on
// port and in dir, waits until it answers, and kills it when t ends.
func startServer(t testing.TB, port int, dir, password string, args []string) *Server {
	t.Helper()
	s := &Server{t: t, port: port, dir: dir, args: args, password: password}
	s.start()
	t.Cleanup(s.Kill)
	return s
}

// Start runs a redis-server for t and waits until it answers. A persistent
// server writes every command to an append-only file before answering, so
// Kill loses no acknowledged write.
func Start(t testing.TB, persistent bool) *Server {
	t.Helper()
	bin := binary(t, "redis-server")
	port, dir := freePort(t), t.TempDir()
	return startServer(t, port, dir, "", append([]string{bin}, baseArgs(port, dir, persistent)...))
}

// StartReplica runs a persistent redis-server that replicates master, and
// waits until it is in sync.
func StartReplica(t testing.TB, master *Server) *Server {
	t.Helper()
	bin := binary(t, "redis-server")
	port, dir := freePort(t), t.TempDir()
	args := append([]string{bin}, baseArgs(port, dir, true)...)
	args = append(args, "--replicaof", "127.0.0.1", strconv.Itoa(master.port))
	if master.password != "" {
		args = append(args, "--masterauth", master.password)
	}
	r := startServer(t, port, dir, "", args)
	waitFor(t, "the replica to sync", func(ctx context.Context) error {
		return replicated(ctx, redis.NewClient(&redis.Options{Addr: master.Addr(), Password: master.password, MaxRetries: -1}))
	})
	return r
}

// SharedURL is REDIS_URL if set, or the URL of a throwaway server of t's.
func SharedURL(t testing.TB) string {
	t.Helper()
	if u := os.Getenv("REDIS_URL"); u != "" {
		return u
	}
	return Start(t, false).URL()
}

// URL is the server's redis:// URL, database 0.
func (s *Server) URL() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", s.port) }

// Addr is the server's host:port.
func (s *Server) Addr() string { return fmt.Sprintf("127.0.0.1:%d", s.port) }

// running says whether the server has been started and has not ended
// since.
func (s *Server) running() bool {
	if s.cmd == nil {
		return false
	}
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

// Kill stops the server at once (SIGKILL): only what it had written to its
// append-only file survives.
func (s *Server) Kill() {
	if s.cmd != nil {
		s.cmd.Process.Kill()
		<-s.exited
		s.cmd = nil
	}
}

// Pause stops the server without ending it (SIGSTOP): it keeps its
// connections but answers nothing, and, as a replica, confirms nothing,
// until Resume.
func (s *Server) Pause() {
	s.t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		s.t.Fatal(err)
	}
}

// Resume continues a paused server (SIGCONT).
func (s *Server) Resume() {
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Signal(syscall.SIGCONT)
	}
}

// Restart starts a killed server again, on its port and in its directory,
// and waits until it answers.
func (s *Server) Restart() {
	s.t.Helper()
	s.start()
}

func (s *Server) start() {
	s.t.Helper()
	s.cmd = exec.Command(s.args[0], s.args[1:]...)
	s.cmd.Dir = s.dir
	dieWithParent(s.cmd)
	var out bytes.Buffer
	s.cmd.Stdout, s.cmd.Stderr = &out, &out
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	exited := make(chan struct{})
	s.exited = exited
	go func(cmd *exec.Cmd) {
		cmd.Wait()
		close(exited)
	}(s.cmd)
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), Password: s.password, MaxRetries: -1})
	defer c.Close()
	for deadline := time.Now().Add(10 * time.Second); ; {
		select {
		case <-exited:
			s.cmd = nil
			s.t.Fatalf("redis-server %s ended at once: %s", s.Addr(), out.String())
		default:
		}
		// Answered by this server, not another on the port.
		info, err := c.Info(context.Background(), "server").Result()
		if err == nil && strings.Contains(info, fmt.Sprintf("\r\nprocess_id:%d\r\n", s.cmd.Process.Pid)) {
			return
		}
		if time.Now().After(deadline) {
			s.Kill()
			s.t.Fatalf("redis-server %s did not start: %s", s.Addr(), out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
