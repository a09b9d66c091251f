package emit_test

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/levee-go/levee/internal/emit"
	"github.com/levee-go/levee/internal/testkit"
	"github.com/levee-go/levee/telemetry/telemetrytest"
)

type testPolicy struct {
	name  string
	calls int64
}

type testInstruments struct{ calls metric.Int64ObservableCounter }

var created int

var testRegistry = emit.NewRegistry(
	func(meter metric.Meter) (testInstruments, []metric.Observable) {
		created++
		c, err := meter.Int64ObservableCounter("test.calls")
		emit.Handle(err)
		return testInstruments{calls: c}, []metric.Observable{c}
	},
	func(o metric.Observer, inst testInstruments, p *testPolicy) {
		o.ObserveInt64(inst.calls, p.calls, metric.WithAttributes(attribute.String("name", p.name)))
	},
)

// The registry's tests share its counter of created instrument sets: they
// do not run in parallel.

func TestRegistry_OneSetOfInstrumentsPerProviderObservingEveryMember(t *testing.T) {
	h := telemetrytest.New(t)
	before := created
	a, b := &testPolicy{name: "a", calls: 1}, &testPolicy{name: "b", calls: 2}
	ma, mb := testRegistry.Join(h.MeterProvider, a), testRegistry.Join(h.MeterProvider, b)
	assert.Same(t, ma, mb)
	assert.Equal(t, before+1, created, "instruments created for the first member only")
	h.AssertInt64("test.calls", 1, attribute.String("name", "a"))
	h.AssertInt64("test.calls", 2, attribute.String("name", "b"))

	other := telemetrytest.New(t)
	assert.NotSame(t, ma, testRegistry.Join(other.MeterProvider, a), "another provider, other instruments")
	other.AssertInt64("test.calls", 1, attribute.String("name", "a"))
	runtime.KeepAlive(b)
}

func TestRegistry_ZeroValueProvidersShareTheirTypesInstruments(t *testing.T) {
	p := &testPolicy{name: "p"}
	before := created
	m1 := testRegistry.Join(noop.MeterProvider{}, p)
	m2 := testRegistry.Join(noop.MeterProvider{}, p)
	assert.Same(t, m1, m2)
	assert.Equal(t, before+1, created)
	assert.Same(t, testRegistry.Join(nil, p), testRegistry.Join(nil, p), "nil is the global provider")
}

func TestRegistry_ADroppedMemberStopsBeingObserved(t *testing.T) {
	h := telemetrytest.New(t)
	kept := &testPolicy{name: "kept"}
	m := testRegistry.Join(h.MeterProvider, kept)
	collected := make(chan struct{})
	func() {
		dropped := &testPolicy{name: "dropped", calls: 5}
		testRegistry.Join(h.MeterProvider, dropped)
		runtime.AddCleanup(dropped, func(ch chan struct{}) { close(ch) }, collected)
	}()
	waitCollected(t, collected)
	h.AssertInt64("test.calls", 0, attribute.String("name", "dropped"))
	h.AssertInt64("test.calls", 0)
	assert.NotNil(t, m.Instruments().calls)
	runtime.KeepAlive(kept)
}

func TestRegistry_MembersDoNotKeepAProviderAlive(t *testing.T) {
	p := &testPolicy{name: "p"}
	collected := make(chan struct{})
	func() {
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
		testRegistry.Join(mp, p)
		runtime.AddCleanup(mp, func(ch chan struct{}) { close(ch) }, collected)
		require.NoError(t, mp.Shutdown(context.Background()))
	}()
	waitCollected(t, collected)
	runtime.KeepAlive(p)
}

func TestRegistry_ARefusedInstrumentIsReportedAndNoCallbackRegistered(t *testing.T) {
	errs := testkit.CaptureOTelErrors(t)
	m := testRegistry.Join(testkit.FaultyMeterProvider{NilInstruments: true}, &testPolicy{name: "p"})
	assert.Nil(t, m.Instruments().calls)
	got := errs.Take()
	require.Len(t, got, 1, "the refused instrument, and no callback registered")
	assert.ErrorIs(t, got[0], testkit.ErrMeterRefused)
}

func waitCollected(t *testing.T, collected chan struct{}) {
	t.Helper()
	for range 20 {
		runtime.GC()
		select {
		case <-collected:
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
	require.FailNow(t, "not collected after 20 GCs")
}
