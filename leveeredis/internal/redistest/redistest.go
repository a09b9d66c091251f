// Package redistest starts a real Redis server on loopback for leveeredis's
// tests: Debian's redis-server, one process per test, on a free port, with no
// persistence, stopped when the test ends. A test can kill the server and
// start it again on the same port, to see what the fleet policies do while
// Redis is gone and when it comes back.
//
// The binary is $LEVEE_REDIS_SERVER, else redis-server on $PATH (CI installs
// it with .ci/redis.sh). A machine without it fails the test with a message
// saying how to install it: a test that needs Redis never passes by skipping.
package redistest

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Server is one redis-server process on 127.0.0.1. Its methods are safe for
// concurrent use.
type Server struct {
	tb   testing.TB
	bin  string
	dir  string
	port int

	mu  sync.Mutex
	cmd *exec.Cmd
}

// Start runs a fresh redis-server on a free loopback port and waits (at most
// 10 s) until it answers PING. The server is killed when tb ends.
func Start(tb testing.TB) *Server {
	tb.Helper()
	bin := os.Getenv("LEVEE_REDIS_SERVER")
	if bin == "" {
		var err error
		bin, err = exec.LookPath("redis-server")
		if err != nil {
			tb.Fatalf("redistest: redis-server not found on PATH (install Debian's redis-server: bash .ci/redis.sh, or set LEVEE_REDIS_SERVER): %v", err)
		}
	}
	s := &Server{tb: tb, bin: bin, dir: tb.TempDir(), port: freePort(tb)}
	s.start()
	tb.Cleanup(s.Kill)
	return s
}

// Addr is the server's host:port, the same across Kill and Restart.
func (s *Server) Addr() string { return fmt.Sprintf("127.0.0.1:%d", s.port) }

// Kill stops the server at once (SIGKILL), as a crash would. Idempotent.
func (s *Server) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

// Restart starts the server again on the same port, empty (nothing is
// persisted), and waits until it answers PING. The server must be killed.
func (s *Server) Restart() {
	s.tb.Helper()
	s.start()
}

func (s *Server) start() {
	s.tb.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		s.tb.Fatalf("redistest: server on %s is already running", s.Addr())
	}
	cmd := exec.Command(s.bin,
		"--port", fmt.Sprint(s.port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", s.dir,
		"--logfile", filepath.Join(s.dir, "redis.log"),
		"--daemonize", "no",
	)
	if err := cmd.Start(); err != nil {
		s.tb.Fatalf("redistest: start %s: %v", s.bin, err)
	}
	s.cmd = cmd
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := ping(s.Addr())
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
			s.tb.Fatalf("redistest: redis-server on %s did not answer PING within 10s: %v\n%s", s.Addr(), err, log)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// ping speaks RESP by hand, so that the harness's readiness check depends on
// no client library.
func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(500 * time.Millisecond))
	if _, err := c.Write([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+PONG") {
		return fmt.Errorf("PING answered %q", line)
	}
	return nil
}

func freePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("redistest: find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
