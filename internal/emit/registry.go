package emit

import (
	"context"
	"reflect"
	"sync"
	"weak"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
)

// Registry is how one kind of stateful policy (bulkheads, rate limits,
// throttles) reports its per-call counts: through observable instruments
// created once per MeterProvider, and one callback per provider that reads
// every policy of that kind at collection time. A policy costs its provider
// a slot in a list, not instruments and a callback of its own.
//
// The registry holds providers and policies weakly: a policy nobody else
// references is garbage and stops being reported, and a provider that is
// shut down and dropped takes its instruments with it.
//
// P is the policy type and I the instruments one provider holds for it.
type Registry[P, I any] struct {
	create  func(metric.Meter) (I, []metric.Observable)
	observe func(o metric.Observer, inst I, p *P)

	mu      sync.Mutex
	entries map[providerKey]weak.Pointer[Members[P, I]]
	sweepAt int
}

// NewRegistry returns a Registry whose providers get their instruments from
// create, which returns them and the observables the callback reports; and
// whose callback calls observe once for every live policy.
func NewRegistry[P, I any](create func(metric.Meter) (I, []metric.Observable), observe func(o metric.Observer, inst I, p *P)) *Registry[P, I] {
	return &Registry[P, I]{create: create, observe: observe}
}

// Members are the policies of one kind that report to one MeterProvider,
// held weakly, and the instruments they report through. A policy keeps its
// Members referenced: they live as long as a policy or the provider's
// callback needs them.
type Members[P, I any] struct {
	inst I

	mu       sync.Mutex
	policies []weak.Pointer[P]
}

// Instruments returns the provider's instruments, for the policies' rare
// synchronous measurements.
func (m *Members[P, I]) Instruments() I { return m.inst }

func (m *Members[P, I]) add(p *P) {
	m.mu.Lock()
	m.policies = append(m.policies, weak.Make(p))
	m.mu.Unlock()
}

// live returns the policies still referenced, and forgets the others.
func (m *Members[P, I]) live() []*P {
	m.mu.Lock()
	defer m.mu.Unlock()
	live := make([]*P, 0, len(m.policies))
	kept := m.policies[:0]
	for _, w := range m.policies {
		if p := w.Value(); p != nil {
			live = append(live, p)
			kept = append(kept, w)
		}
	}
	clear(m.policies[len(kept):])
	m.policies = kept
	return live
}

// providerKey identifies a MeterProvider without keeping it alive. For a
// pointer it holds a weak pointer: two are equal when made from the same
// pointer, even after the object is gone (a new object at the same address
// gets a new one). A zero value that is not a pointer (noop.MeterProvider{})
// holds nothing and is identified by its type alone.
type providerKey struct {
	typ reflect.Type
	ptr weak.Pointer[byte]
}

// Join registers p with the Members of mp (the global MeterProvider when
// nil), creating their instruments and callback for the provider's first
// policy of this kind, and returns them. A provider that is neither a
// pointer nor a zero value cannot be told apart from its copies: each of its
// policies gets instruments of its own.
func (r *Registry[P, I]) Join(mp metric.MeterProvider, p *P) *Members[P, I] {
	m := r.membersFor(mp)
	m.add(p)
	return m
}

func (r *Registry[P, I]) membersFor(mp metric.MeterProvider) *Members[P, I] {
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	v := reflect.ValueOf(mp)
	key := providerKey{typ: v.Type()}
	switch {
	case v.Kind() == reflect.Pointer && !v.IsNil():
		key.ptr = weak.Make((*byte)(v.UnsafePointer()))
	case !v.IsZero():
		return r.newMembers(mp)
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	if m := r.entries[key].Value(); m != nil {
		return m
	}
	m := r.newMembers(mp)
	if r.entries == nil {
		r.entries = make(map[providerKey]weak.Pointer[Members[P, I]])
	}
	r.entries[key] = weak.Make(m)
	if len(r.entries) >= r.sweepAt {
		// Drop the entries whose members are gone (no policy and no
		// provider holds them), at most as often as the map doubles.
		for k, w := range r.entries {
			if w.Value() == nil {
				delete(r.entries, k)
			}
		}
		r.sweepAt = 2*len(r.entries) + 8
	}
	return m
}

// newMembers creates the instruments of mp and registers the callback that
// observes the members. Instruments or a callback the provider refuses are
// reported to Handle; the policies then report nothing there, and work.
func (r *Registry[P, I]) newMembers(mp metric.MeterProvider) *Members[P, I] {
	meter := Meter(mp)
	m := &Members[P, I]{}
	var observables []metric.Observable
	m.inst, observables = r.create(meter)
	for _, o := range observables {
		if o == nil {
			return m
		}
	}
	if len(observables) == 0 {
		return m
	}
	observe := r.observe
	_, err := meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		for _, p := range m.live() {
			observe(o, m.inst, p)
		}
		return nil
	}, observables...)
	Handle(err)
	return m
}
