package redistest

import (
	"testing"
)

// The harness itself: a server answers, a killed one does not, a restarted
// one answers again on the same address.
func TestStartKillRestart(t *testing.T) {
	s := Start(t)
	if err := ping(s.Addr()); err != nil {
		t.Fatalf("fresh server: PING failed: %v", err)
	}
	addr := s.Addr()
	s.Kill()
	if err := ping(addr); err == nil {
		t.Fatal("killed server still answers PING")
	}
	s.Kill() // idempotent
	s.Restart()
	if s.Addr() != addr {
		t.Fatalf("restart moved the server from %s to %s", addr, s.Addr())
	}
	if err := ping(s.Addr()); err != nil {
		t.Fatalf("restarted server: PING failed: %v", err)
	}
}
