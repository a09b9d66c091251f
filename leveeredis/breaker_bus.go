package leveeredis

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// breakerBus is the one pub/sub subscription of a Fleet's breakers: each
// change of a fleet breaker's state is announced on the Fleet's channel
// with the breaker's name, and the bus wakes that breaker's loop, so a
// change reaches every instance in about a round trip instead of a sync
// interval. One subscription (one connection) per instance, whatever the
// number of breakers. A message lost (Redis down, a reconnection) costs at
// most a sync interval: the loops poll anyway, and every breaker is woken
// when the subscription is made again.
type breakerBus struct {
	f       *Fleet
	channel string

	mu     sync.Mutex
	byName map[string][]*Breaker
}

// breakerChannel is the pub/sub channel of the Fleet's breakers.
func (f *Fleet) breakerChannel() string { return f.prefix + ":breaker:changes" }

// bus returns the Fleet's breaker bus, starting it with the first call.
func (f *Fleet) bus() *breakerBus {
	f.breakersOnce.Do(func() {
		f.breakers = &breakerBus{f: f, channel: f.breakerChannel(), byName: map[string][]*Breaker{}}
		f.run(f.breakers.loop)
	})
	return f.breakers
}

func (bus *breakerBus) register(b *Breaker) {
	bus.mu.Lock()
	defer bus.mu.Unlock()
	bus.byName[b.name] = append(bus.byName[b.name], b)
}

func (bus *breakerBus) unregister(b *Breaker) {
	bus.mu.Lock()
	defer bus.mu.Unlock()
	list := bus.byName[b.name]
	for i, x := range list {
		if x == b {
			list = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(bus.byName, b.name)
	} else {
		bus.byName[b.name] = list
	}
}

// wake pokes the breakers named name, or every breaker for "".
func (bus *breakerBus) wake(name string) {
	bus.mu.Lock()
	defer bus.mu.Unlock()
	if name == "" {
		for _, list := range bus.byName {
			for _, b := range list {
				b.poke()
			}
		}
		return
	}
	for _, b := range bus.byName[name] {
		b.poke()
	}
}

func (bus *breakerBus) loop(ctx context.Context) {
	// Every exchange on the subscription (the first connection, each
	// reconnection and its handshake, each receive) is bounded: f.ctx has no
	// deadline, and a Redis that accepts connections but never answers would
	// otherwise hold this loop, and Close, for the client's ReadTimeout, or
	// for ever when that is -1.
	sctx, cancel := context.WithTimeout(ctx, bus.f.opTimeout)
	ps := bus.f.client.Subscribe(sctx, bus.channel)
	cancel()
	defer ps.Close()
	// Receive waits at most this long, so that Close is answered soon.
	wait := min(bus.f.interval, bus.f.opTimeout)
	for ctx.Err() == nil {
		rctx, cancel := context.WithTimeout(ctx, wait+bus.f.opTimeout)
		msg, err := ps.ReceiveTimeout(rctx, wait)
		cancel()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue // nothing announced
			}
			// Redis unreachable: the loops poll on their own; try again
			// after a sync interval.
			t := time.NewTimer(bus.f.interval)
			select {
			case <-ctx.Done():
			case <-t.C:
			}
			t.Stop()
			continue
		}
		switch m := msg.(type) {
		case *redis.Message:
			bus.wake(m.Payload)
		case *redis.Subscription:
			bus.wake("") // (re)subscribed: what was announced meanwhile is unknown
		}
	}
}
