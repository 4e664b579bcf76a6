package redistest

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

// SentinelConfig sets up a Sentinel.
type SentinelConfig struct {
	// Password, when set, is required of every client of the data nodes
	// (requirepass) and used by replicas towards their master
	// (masterauth) and by the sentinels (auth-pass).
	Password string
	// SentinelPassword, when set, is required of every client of the
	// sentinels themselves (requirepass on the sentinels, which also use
	// it towards each other).
	SentinelPassword string
}

// Sentinel is a master, one replica of it and three sentinels that watch
// them (quorum 2), all on free loopback ports. The data nodes write each
// command to their append-only file before answering. A master that does
// not answer for one second is down, and the sentinels promote the
// replica. Everything is killed when the test ends.
type Sentinel struct {
	t         testing.TB
	name      string
	data      []*Server
	sentinels []*Server
	cfg       SentinelConfig
}

// StartSentinel runs a Sentinel without passwords for t and waits until
// every sentinel knows the master, its replica and the other sentinels,
// and the replica is in sync.
func StartSentinel(t testing.TB) *Sentinel {
	t.Helper()
	return StartSentinelWith(t, SentinelConfig{})
}

// StartSentinelWith is StartSentinel with cfg.
func StartSentinelWith(t testing.TB, cfg SentinelConfig) *Sentinel {
	t.Helper()
	bin := binary(t, "redis-server")
	s := &Sentinel{t: t, name: "ownid-test", cfg: cfg}
	var master string
	for i := range 2 {
		port, dir := freePort(t), t.TempDir()
		args := append([]string{bin}, baseArgs(port, dir, true)...)
		if cfg.Password != "" {
			args = append(args, "--requirepass", cfg.Password, "--masterauth", cfg.Password)
		}
		if i == 1 {
			host, port, _ := net.SplitHostPort(master)
			args = append(args, "--replicaof", host, port)
		}
		srv := startServer(t, port, dir, cfg.Password, args)
		s.data = append(s.data, srv)
		master = s.data[0].Addr()
	}
	host, mport, _ := net.SplitHostPort(master)
	for range 3 {
		port, dir := freePort(t), t.TempDir()
		conf := []string{
			"port " + strconv.Itoa(port),
			"bind 127.0.0.1",
			"protected-mode no",
			"daemonize no",
			"loglevel warning",
			`logfile ""`,
			"dir " + dir,
			"sentinel resolve-hostnames no",
			fmt.Sprintf("sentinel monitor %s %s %s 2", s.name, host, mport),
			fmt.Sprintf("sentinel down-after-milliseconds %s 1000", s.name),
			fmt.Sprintf("sentinel failover-timeout %s 3000", s.name),
			fmt.Sprintf("sentinel parallel-syncs %s 1", s.name),
		}
		if cfg.Password != "" {
			conf = append(conf, fmt.Sprintf("sentinel auth-pass %s %s", s.name, cfg.Password))
		}
		if cfg.SentinelPassword != "" {
			conf = append(conf, "requirepass "+cfg.SentinelPassword, "sentinel sentinel-pass "+cfg.SentinelPassword)
		}
		// The sentinel rewrites its file, so it is its own, in its
		// directory, readable by nobody else (it may hold passwords).
		file := filepath.Join(dir, "sentinel.conf")
		if err := os.WriteFile(file, []byte(strings.Join(conf, "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		s.sentinels = append(s.sentinels, startServer(t, port, dir, cfg.SentinelPassword, []string{bin, file, "--sentinel"}))
	}
	s.waitSentinels(master)
	return s
}

// MasterName is the name the sentinels monitor the master by.
func (s *Sentinel) MasterName() string { return s.name }

// SentinelAddrs are the host:port of the three sentinels.
func (s *Sentinel) SentinelAddrs() []string {
	addrs := make([]string, len(s.sentinels))
	for i, n := range s.sentinels {
		addrs[i] = n.Addr()
	}
	return addrs
}

// DataAddrs are the host:port of the master and the replica as they
// started (the first is the first master).
func (s *Sentinel) DataAddrs() []string {
	return []string{s.data[0].Addr(), s.data[1].Addr()}
}

func (s *Sentinel) sentinelClient(addr string) *redis.SentinelClient {
	return redis.NewSentinelClient(&redis.Options{Addr: addr, Password: s.cfg.SentinelPassword, MaxRetries: -1, DialerRetries: 1})
}

func (s *Sentinel) dataClient(addr string) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: addr, Password: s.cfg.Password, MaxRetries: -1, DialerRetries: 1})
}

// masterOf is the master the sentinel at addr names.
func (s *Sentinel) masterOf(ctx context.Context, addr string) (string, error) {
	sc := s.sentinelClient(addr)
	defer sc.Close()
	hp, err := sc.GetMasterAddrByName(ctx, s.name).Result()
	if err != nil {
		return "", err
	}
	return net.JoinHostPort(hp[0], hp[1]), nil
}

// Master is the address of the master as the first sentinel names it now.
func (s *Sentinel) Master() string {
	s.t.Helper()
	m, err := s.masterOf(context.Background(), s.sentinels[0].Addr())
	if err != nil {
		s.t.Fatal(err)
	}
	return m
}

// server is the data node at addr, or the test fails.
func (s *Sentinel) server(addr string) *Server {
	s.t.Helper()
	for _, d := range s.data {
		if d.Addr() == addr {
			return d
		}
	}
	s.t.Fatalf("no data node at %s", addr)
	return nil
}

// Kill stops the data node at addr at once (SIGKILL).
func (s *Sentinel) Kill(addr string) {
	s.t.Helper()
	s.server(addr).Kill()
}

// KillMaster stops the current master at once (SIGKILL) and returns its
// address.
func (s *Sentinel) KillMaster() string {
	s.t.Helper()
	m := s.Master()
	s.server(m).Kill()
	return m
}

// WaitPromoted waits until every sentinel names a master other than old
// and that master says it is one, and returns its address; it fails the
// test after 20 s.
func (s *Sentinel) WaitPromoted(old string) string {
	s.t.Helper()
	var promoted string
	waitFor(s.t, "a replica to be promoted", func(ctx context.Context) error {
		promoted = ""
		for _, sn := range s.sentinels {
			m, err := s.masterOf(ctx, sn.Addr())
			if err != nil {
				return err
			}
			if m == old || (promoted != "" && m != promoted) {
				return fmt.Errorf("sentinel %s names %s", sn.Addr(), m)
			}
			promoted = m
		}
		dc := s.dataClient(promoted)
		defer dc.Close()
		info, err := dc.Info(ctx, "replication").Result()
		if err != nil {
			return err
		}
		if !strings.Contains(info, "role:master\r\n") {
			return fmt.Errorf("%s is not a master yet", promoted)
		}
		return nil
	})
	return promoted
}

// Rejoin restarts the killed data node at addr, with its files, as a
// replica of the current master, and waits until it is in sync (or fails
// the test after 20 s). The sentinels learn of it on their own, within
// ten seconds; Rejoin does not wait for that.
func (s *Sentinel) Rejoin(addr string) {
	s.t.Helper()
	srv := s.server(addr)
	master := s.Master()
	host, port, _ := net.SplitHostPort(master)
	if i := slices.Index(srv.args, "--replicaof"); i >= 0 {
		srv.args = slices.Delete(srv.args, i, i+3)
	}
	srv.args = append(srv.args, "--replicaof", host, port)
	srv.Restart()
	waitFor(s.t, "the old master to sync as a replica", func(ctx context.Context) error {
		return replicated(ctx, s.dataClient(master))
	})
}

// waitSentinels waits until every sentinel names master, knows the other
// sentinels and an in-sync replica of it, or fails the test after 20 s.
func (s *Sentinel) waitSentinels(master string) {
	s.t.Helper()
	waitFor(s.t, "the sentinels to know the master, its replica and each other", func(ctx context.Context) error {
		if err := replicated(ctx, s.dataClient(master)); err != nil {
			return fmt.Errorf("%s: %v", master, err)
		}
		for _, sn := range s.sentinels {
			sc := s.sentinelClient(sn.Addr())
			err := s.sentinelKnows(ctx, sc, master)
			sc.Close()
			if err != nil {
				return fmt.Errorf("sentinel %s: %v", sn.Addr(), err)
			}
		}
		return nil
	})
}

func (s *Sentinel) sentinelKnows(ctx context.Context, sc *redis.SentinelClient, master string) error {
	hp, err := sc.GetMasterAddrByName(ctx, s.name).Result()
	if err != nil {
		return err
	}
	if m := net.JoinHostPort(hp[0], hp[1]); m != master {
		return fmt.Errorf("names %s as the master", m)
	}
	others, err := sc.Sentinels(ctx, s.name).Result()
	if err != nil {
		return err
	}
	if len(others) != len(s.sentinels)-1 {
		return fmt.Errorf("knows %d other sentinels", len(others))
	}
	replicas, err := sc.Replicas(ctx, s.name).Result()
	if err != nil {
		return err
	}
	for _, r := range replicas {
		if r["flags"] == "slave" && r["master-link-status"] == "ok" {
			return nil
		}
	}
	return fmt.Errorf("knows no replica in sync: %v", replicas)
}
