// Command fleet runs three instances of one service in one process, each
// with its own Redis client, Fleet and fleet breaker guarding one shared
// dependency, and prints how the fleet opens and recovers:
//
//   - one instance sees the dependency fail: only its own breaker opens;
//   - a second one does: a quorum (2 of 3), and every instance opens, the
//     third one too, which never saw a failure;
//   - the open period ends: one instance probes for the fleet, the
//     dependency is still down, every instance stays open;
//   - the dependency is back: the next probe succeeds and every instance
//     closes.
//
// It talks to the Redis at $LEVEE_REDIS_ADDR, or, when that is unset,
// starts a redis-server of its own on a free loopback port (Debian's
// redis-server package) and stops it on exit.
//
//	go run ./example/fleet            # from leveeredis/
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/levee-go/levee/breaker"
	"github.com/levee-go/levee/leveeredis"
)

func main() {
	addr := os.Getenv("LEVEE_REDIS_ADDR")
	if addr == "" {
		a, stop, err := startRedis()
		if err != nil {
			fmt.Fprintln(os.Stderr, "fleet:", err)
			os.Exit(1)
		}
		defer stop()
		addr = a
	}
	if err := run(os.Stdout, addr, "example-"+fmt.Sprint(time.Now().UnixNano())); err != nil {
		fmt.Fprintln(os.Stderr, "fleet:", err)
		os.Exit(1)
	}
}

var errDown = errors.New("dependency down")

// run is the example, printing to w, against the Redis at addr, under the
// key prefix prefix.
func run(w io.Writer, addr, prefix string) error {
	var down atomic.Bool
	var probes atomic.Int64 // calls that reached the dependency from a half-open breaker
	var brs []*leveeredis.Breaker
	// call calls the dependency through b.
	call := func(ctx context.Context, b *leveeredis.Breaker) error {
		return b.Call(ctx, func(context.Context) error {
			if b.State() == breaker.HalfOpen {
				probes.Add(1)
			}
			if down.Load() {
				return errDown
			}
			return nil
		})
	}

	names := []string{"a", "b", "c"}
	for _, id := range names {
		client := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true})
		defer client.Close()
		fleet := leveeredis.NewFleet(client,
			leveeredis.WithInstanceID(id), leveeredis.WithKeyPrefix(prefix),
			leveeredis.WithSyncInterval(50*time.Millisecond))
		defer fleet.Close()
		brs = append(brs, leveeredis.NewBreaker(fleet, "payments",
			leveeredis.WithOpenTimeout(500*time.Millisecond), // and a quorum of max(2, half the live instances)
			leveeredis.WithLocalOptions(breaker.WithFailureThreshold(3))))
	}
	states := func() string {
		var parts []string
		for i, b := range brs {
			parts = append(parts, names[i]+"="+b.State().String())
		}
		return strings.Join(parts, " ")
	}
	wait := func(what string, cond func() bool) error {
		deadline := time.Now().Add(5 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				return fmt.Errorf("timed out waiting for %s (%s)", what, states())
			}
			time.Sleep(5 * time.Millisecond)
		}
		return nil
	}
	all := func(s breaker.State) func() bool {
		return func() bool {
			for _, b := range brs {
				if b.State() != s {
					return false
				}
			}
			return true
		}
	}
	trip := func(b *leveeredis.Breaker) {
		for b.State() == breaker.Closed {
			_ = call(context.Background(), b)
		}
	}

	if err := wait("three live instances", func() bool { return brs[2].View().Live == 3 }); err != nil {
		return err
	}
	fmt.Fprintf(w, "three instances, fleet %s: %s\n", brs[2].View().State, states())

	down.Store(true)
	trip(brs[0])
	if err := wait("c to see a's trip", func() bool { return brs[2].View().Tripped == 1 }); err != nil {
		return err
	}
	fmt.Fprintf(w, "a sees the dependency fail: %s (1 of 3 tripped, fleet %s)\n", states(), brs[2].View().State)

	start := time.Now()
	trip(brs[1])
	if err := wait("every instance open", all(breaker.Open)); err != nil {
		return err
	}
	lag := time.Since(start)
	fmt.Fprintf(w, "b too: quorum, fleet %s: %s\n", brs[2].View().State, states())

	// Every instance keeps calling; while the fleet is open only the probe
	// reaches the dependency.
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stop()
	for _, b := range brs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				_ = call(ctx, b)
				time.Sleep(time.Millisecond)
			}
		}()
	}
	if err := wait("the first probe", func() bool { return probes.Load() >= 1 }); err != nil {
		return err
	}
	if err := wait("the probe's result published", func() bool {
		for _, b := range brs {
			if v := b.View(); v.State != leveeredis.FleetOpen || v.ProbeHolder != "" || b.State() != breaker.Open {
				return false
			}
		}
		return true
	}); err != nil {
		return err
	}
	fmt.Fprintf(w, "open period over: %d probe for the fleet, it fails: %s\n", probes.Load(), states())

	down.Store(false)
	if err := wait("every instance closed", all(breaker.Closed)); err != nil {
		return err
	}
	stop()
	fmt.Fprintf(w, "dependency back: %d probes in all, fleet %s: %s\n", probes.Load(), brs[0].View().State, states())
	if os.Getenv("FLEET_EXAMPLE_TIMING") != "" {
		fmt.Fprintf(w, "(the opening reached every instance in %v)\n", lag)
	}
	return nil
}

// startRedis starts a redis-server on a free loopback port, with no
// persistence, and returns its address and a function that stops it.
func startRedis() (string, func(), error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return "", nil, fmt.Errorf("set LEVEE_REDIS_ADDR, or install redis-server (apt-get install redis-server): %w", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	dir, err := os.MkdirTemp("", "fleet-example")
	if err != nil {
		return "", nil, err
	}
	cmd := exec.Command(bin, "--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir)
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop := func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); _ = os.RemoveAll(dir) }
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for deadline := time.Now().Add(5 * time.Second); ; {
		c := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true})
		err := c.Ping(context.Background()).Err()
		c.Close()
		if err == nil {
			return addr, stop, nil
		}
		if time.Now().After(deadline) {
			stop()
			return "", nil, fmt.Errorf("redis-server on %s did not answer: %w", addr, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
