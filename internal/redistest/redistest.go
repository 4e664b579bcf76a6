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
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Server is a redis-server on a free loopback port, with its own directory,
// stopped when the test that started it ends.
type Server struct {
	t    testing.TB
	port int
	dir  string
	cmd  *exec.Cmd
	args []string
}

// Start runs a redis-server for t and waits until it answers. A persistent
// server writes every command to an append-only file before answering, so
// Kill loses no acknowledged write.
func Start(t testing.TB, persistent bool) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("redis-server is not installed; .ci/run installs Debian's redis-server package")
		}
		t.Skip("redis-server is not installed (apt-get install redis-server); the Redis store is untested here")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	s := &Server{t: t, port: port, dir: t.TempDir()}
	s.args = []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", s.dir,
		"--save", "", "--protected-mode", "no", "--daemonize", "no", "--loglevel", "warning",
		"--enable-debug-command", "local"} // DEBUG SLEEP makes a Redis that stops answering
	if persistent {
		s.args = append(s.args, "--appendonly", "yes", "--appendfsync", "always")
	} else {
		s.args = append(s.args, "--appendonly", "no")
	}
	s.args = append([]string{bin}, s.args...)
	s.start()
	t.Cleanup(s.Kill)
	return s
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

// Kill stops the server at once (SIGKILL): only what it had written to its
// append-only file survives.
func (s *Server) Kill() {
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Kill()
		s.cmd.Wait()
		s.cmd = nil
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
	var out bytes.Buffer
	s.cmd.Stdout, s.cmd.Stderr = &out, &out
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	c := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", s.port)})
	defer c.Close()
	for deadline := time.Now().Add(10 * time.Second); ; {
		if c.Ping(context.Background()).Err() == nil {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("redis-server did not start: %s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
