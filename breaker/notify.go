package breaker

import (
	"fmt"
	"strconv"
	"sync"

	"github.com/levee-go/levee/internal/emit"
)

// maxQueuedChanges bounds the changes waiting for listeners that do not
// return: past it, new changes are dropped (and reported to otel.Handle)
// rather than held without limit.
const maxQueuedChanges = 1024

// notifier delivers a breaker's changes to its listeners on a goroutine of
// its own, started when a change is queued and none is running, and ending
// when the queue is empty: no call waits for a listener, a slow listener
// delays only the changes after it, and an idle breaker runs no goroutine.
// Changes reach the listeners one at a time, in the order they were made.
type notifier struct {
	name      string
	listeners []func(StateChange)

	mu      sync.Mutex
	queue   []StateChange
	running bool
	dropped int
}

func (n *notifier) enqueue(c StateChange) {
	n.mu.Lock()
	if len(n.queue) >= maxQueuedChanges {
		n.dropped++
		dropped := n.dropped
		n.mu.Unlock()
		if dropped == 1 || dropped%maxQueuedChanges == 0 {
			emit.Handle(fmt.Errorf("levee: circuit breaker %s: %d state changes dropped: its listeners have not returned for %d changes",
				strconv.Quote(n.name), dropped, maxQueuedChanges))
		}
		return
	}
	n.queue = append(n.queue, c)
	start := !n.running
	n.running = true
	n.mu.Unlock()
	if start {
		go n.deliver()
	}
}

func (n *notifier) deliver() {
	finished := false
	defer func() {
		if !finished {
			// A listener called runtime.Goexit (t.FailNow, say): this
			// goroutine is ending. Another delivers the rest.
			go n.deliver()
		}
	}()
	for {
		n.mu.Lock()
		if len(n.queue) == 0 {
			n.queue = nil
			n.running = false
			n.mu.Unlock()
			finished = true
			return
		}
		c := n.queue[0]
		n.queue = n.queue[1:]
		n.mu.Unlock()
		for _, listener := range n.listeners {
			emit.Guard(fmt.Sprintf("circuit breaker %s: state-change listener on %s -> %s", strconv.Quote(n.name), c.From, c.To),
				func() { listener(c) })
		}
	}
}
