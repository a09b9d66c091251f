package leveeredis

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// hungRedis is a TCP server that accepts connections and never answers:
// a Redis that is up but stuck (a long script, a full disk, a partition that
// drops packets). It closes its connections when the test ends.
type hung struct {
	addr  string
	mu    sync.Mutex
	conns []net.Conn
}

func hungRedis(t *testing.T) *hung {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	h := &hung{addr: ln.Addr().String()}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			h.mu.Lock()
			h.conns = append(h.conns, c)
			h.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		<-done
		h.drop()
	})
	return h
}

// accepted is how many connections the server has taken.
func (h *hung) accepted() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.conns)
}

// drop closes every connection taken so far: the clients see them fail.
func (h *hung) drop() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range h.conns {
		_ = c.Close()
	}
}

// within fails the test with what when fn has not returned after bound.
func within(t *testing.T, bound time.Duration, what string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); fn() }()
	select {
	case <-done:
	case <-time.After(bound):
		require.FailNow(t, what+": still waiting after "+bound.String())
	}
}

// A client whose reads never time out on their own (ReadTimeout -1), as
// some users configure for blocking commands: only the context bounds its
// operations. Against a Redis that never answers, every fleet operation
// must still end within WithOpTimeout, ForceOpen must return an error,
// and Close must return.
func TestFleetOpsAreBoundedAgainstAHungRedis(t *testing.T) {
	c := redis.NewClient(&redis.Options{
		Addr: hungRedis(t).addr, MaxRetries: -1, ReadTimeout: -1, WriteTimeout: -1,
		ContextTimeoutEnabled: true,
	})
	defer func() { _ = c.Close() }()
	f := NewFleet(c, WithInstanceID("a"), WithOpTimeout(50*time.Millisecond))
	br := NewBreaker(f, "payments")
	within(t, 10*time.Second, "ForceOpen against a hung Redis", func() {
		err := br.ForceOpen(context.Background())
		assert.Error(t, err, "a Redis that never answers is a failed operation")
	})
	within(t, 10*time.Second, "Close against a hung Redis", f.Close)
}

// Calls never wait on Redis: with every Redis operation stuck for an hour
// (a hung server, and an op timeout of an hour), calls through the fleet
// breaker and the fleet budget still run, and the fleet limiter answers at
// once (it rejects: it has no lease and no word yet that Redis is down).
// A call that waited on Redis would hang here, whatever the machine's load.
func TestCallsNeverWaitOnAHungRedis(t *testing.T) {
	h := hungRedis(t)
	c := redis.NewClient(&redis.Options{
		Addr: h.addr, MaxRetries: -1, ReadTimeout: -1, WriteTimeout: -1,
		ContextTimeoutEnabled: true,
	})
	defer func() { _ = c.Close() }()
	f := NewFleet(c, WithInstanceID("a"), WithOpTimeout(time.Hour))
	br := NewBreaker(f, "payments")
	lim := NewLimiter(f, "payments", 100, time.Second)
	bud := NewBudget(f, "payments", 0.5, 10)
	// The pub/sub bus and the three policies' loops each wait on a
	// connection of their own.
	within(t, 10*time.Second, "four connections to the hung Redis", func() {
		for h.accepted() < 4 {
			time.Sleep(time.Millisecond)
		}
	})
	within(t, 10*time.Second, "calls against a hung Redis", func() {
		for range 100 {
			ran := false
			require.NoError(t, br.Call(context.Background(), func(context.Context) error { ran = true; return nil }))
			assert.True(t, ran)
			_ = lim.Call(context.Background(), func(context.Context) error { return nil })
			bud.impl.Deposit()
			_ = bud.impl.TryWithdraw()
		}
	})
	// With an op timeout of an hour only a dead connection ends the loops'
	// operations: Close waits for them, as it says. The server drops every
	// connection until Close returns (a loop may have reconnected between
	// a drop and Close's cancel).
	closed := make(chan struct{})
	go func() { defer close(closed); f.Close() }()
	within(t, 10*time.Second, "Close once the hung Redis drops its connections", func() {
		for {
			h.drop()
			select {
			case <-closed:
				return
			case <-time.After(time.Millisecond):
			}
		}
	})
}

// go-redis ignores a context's deadline unless ContextTimeoutEnabled is set:
// WithOpTimeout would bound nothing, and a Redis that never answers would
// hold ForceOpen, Reset and Close for the client's ReadTimeout (for ever
// when it is -1). NewFleet refuses such a client, naming the option.
func TestNewFleetRefusesAClientThatIgnoresDeadlines(t *testing.T) {
	want := "leveeredis: NewFleet: the Redis client must set ContextTimeoutEnabled: true, else go-redis ignores context deadlines and WithOpTimeout bounds nothing"
	for _, c := range []Client{
		redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}),
		redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{"127.0.0.1:1"}}),
		redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"a": "127.0.0.1:1"}}),
		redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{"127.0.0.1:1"}}),
	} {
		assert.PanicsWithValue(t, want, func() { NewFleet(c) }, "%T", c)
		_ = c.Close()
	}
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", ContextTimeoutEnabled: true})
	defer func() { _ = c.Close() }()
	NewFleet(c).Close()
}
