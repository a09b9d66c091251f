// Command quickstart is levee in one screen: a flaky pricing service behind
// a fallback, a circuit breaker and a timeout, the breaker going
// closed -> open -> half-open -> closed while the fallback answers for the
// service, and then every span and metric value the run produced.
//
//	go run ./examples/quickstart
//
// It runs in about half a second, on real time: the breaker's open timeout
// is 500 ms, and its own timer makes it half-open. The service follows a
// script rather than chance, so the story is the same every time; only the
// times printed differ a little from run to run.
package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/levee-go/levee/breaker"
	"github.com/levee-go/levee/fallback"
	"github.com/levee-go/levee/resilience"
)

func main() {
	if err := run(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

const (
	// callTimeout bounds each call to the pricing service: a context
	// deadline, kept short so that the one slow call costs the demo 20 ms.
	callTimeout = 20 * time.Millisecond
	// openTimeout is how long the breaker stays open before its timer
	// lets a probe through: 30 s by default, short here so that the demo
	// does not wait. (A test would keep the default and run in a
	// testing/synctest bubble, where 30 s pass at once: docs/testing.md.)
	openTimeout = 500 * time.Millisecond
	// changeWait bounds each wait for a state change to reach the
	// listener, so that the demo can never hang.
	changeWait = 5 * time.Second
)

// What the pricing service does on each of its calls, in order. A call the
// breaker rejects never reaches the service, so it does not use up a step.
var script = []step{
	{answer: "42.00"},
	{answer: "42.10"},
	{fail: true},
	{slow: true},
	{fail: true},
	// The breaker is open now: calls 6 and 7 are rejected and never come here.
	{answer: "42.30"}, // the half-open probe
	{answer: "42.35"},
}

type step struct {
	answer string // the price it answers
	fail   bool   // it fails at once
	slow   bool   // it answers only after its caller gives up
}

// unavailableError is the service's failure. Telemetry names it by its Go
// type (error.type=*main.unavailableError), never by its message.
type unavailableError struct{ status int }

func (e *unavailableError) Error() string { return fmt.Sprintf("pricing: status %d", e.status) }

// pricingService is the flaky dependency. It notes what it did on its last
// call, for the demo to print.
type pricingService struct {
	calls int
	did   string
}

func (s *pricingService) price(ctx context.Context) (string, error) {
	st := script[s.calls%len(script)]
	s.calls++
	switch {
	case st.fail:
		s.did = "fails (503)"
		return "", &unavailableError{status: 503}
	case st.slow:
		s.did = "too slow"
		<-ctx.Done() // it honours its context, so the timeout can stop it
		return "", ctx.Err()
	}
	s.did = "answers " + st.answer
	return st.answer, nil
}

// run plays the demo and writes it to w.
func run(w io.Writer) error {
	// The OpenTelemetry SDK, keeping everything in memory: spans as they
	// end, metrics when read. An application would export them instead
	// (OTLP, Prometheus: see docs/telemetry.md).
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	metrics := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(metrics))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	defer func() { _ = mp.Shutdown(context.Background()) }()

	// The breaker tells its listeners of each change on a goroutine of its
	// own, after the change: the demo receives them here, and prints each
	// one once it has arrived.
	changes := make(chan breaker.StateChange, 16)
	pricing := breaker.New("pricing",
		breaker.WithFailureThreshold(3),
		breaker.WithOpenTimeout(openTimeout),
		breaker.WithStateChangeListener(func(c breaker.StateChange) { changes <- c }),
		breaker.WithTracerProvider(tp),
		breaker.WithMeterProvider(mp),
	)
	service := &pricingService{}
	// Wrap around the breaker: the fallback and the timeout report under
	// the breaker's name and providers, given once, above.
	getPrice := resilience.Wrap(service.price,
		// Outermost: any failure, a rejection included, gets the last known price.
		fallback.Value("41.99 (last known)"),
		breaker.Policy[string](pricing),
		// Innermost: a slow call is a failure the breaker counts.
		resilience.Timeout[string](callTimeout),
	)
	tracer := tp.Tracer("quickstart")

	fmt.Fprintln(w, "levee quickstart: a flaky pricing service behind fallback -> breaker -> timeout")
	fmt.Fprintf(w, "  breaker %q: opens after 3 consecutive failures, lets a probe through %v later\n", pricing.Name(), openTimeout)
	fmt.Fprintf(w, "  timeout: %v a call; fallback: the last known price\n\n", callTimeout)
	fmt.Fprintf(w, "%-5s %-7s %-17s %-20s %s\n", "call", "time", "pricing service", "answer", "breaker")

	start := time.Now()
	elapsed := func() string { return fmt.Sprintf("+%dms", time.Since(start).Milliseconds()) }
	// awaitChange prints the changes the listener receives until one
	// enters want.
	awaitChange := func(want breaker.State) error {
		timeout := time.After(changeWait)
		for {
			select {
			case c := <-changes:
				line := fmt.Sprintf("%-53s %s -> %s", "", c.From, c.To)
				if c.To == breaker.Open {
					line += fmt.Sprintf(" (%d consecutive failures)", c.ConsecutiveFailures)
				}
				fmt.Fprintln(w, line)
				if c.To == want {
					return nil
				}
			case <-timeout:
				return fmt.Errorf("the listener was not told of a change to %s within %v", want, changeWait)
			}
		}
	}
	reported := pricing.State()
	call := func(n int) error {
		ctx, span := tracer.Start(context.Background(), "GET /price",
			trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(attribute.Int("call", n)))
		defer span.End()
		at := elapsed()
		service.did = "not called"
		price, err := getPrice(ctx)
		if err != nil {
			return fmt.Errorf("call %d: %w", n, err)
		}
		state := pricing.State()
		fmt.Fprintf(w, "%-5d %-7s %-17s %-20s %s\n", n, at, service.did, price, state)
		if state != reported {
			reported = state
			return awaitChange(state)
		}
		return nil
	}

	n := 0
	for range 7 { // three failures open the breaker; the next two are rejected
		n++
		if err := call(n); err != nil {
			return err
		}
	}
	// No call moves the breaker on: its timer does, once the open timeout
	// has passed. That change's span is a root span, linked to the span of
	// the call that opened the breaker.
	fmt.Fprintf(w, "      ... waiting: %v after it opened, the breaker's timer makes it half-open\n", openTimeout)
	if err := awaitChange(breaker.HalfOpen); err != nil {
		return err
	}
	reported = breaker.HalfOpen
	fmt.Fprintf(w, "      ... %s: the breaker is %s\n", elapsed(), pricing.State())
	for range 2 { // the probe succeeds and closes the breaker; traffic goes on
		n++
		if err := call(n); err != nil {
			return err
		}
	}

	// The goroutine that made a change reports it (a span, a count) just
	// after queueing it for the listener: the timer's may still be at it.
	if err := awaitSpans(spans, "levee.circuit_breaker.transition", 3); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nSpans (from an in-memory exporter), children indented under their parent:")
	printSpans(w, spans.GetSpans().Snapshots())

	var rm metricdata.ResourceMetrics
	if err := metrics.Collect(context.Background(), &rm); err != nil {
		return err
	}
	// A breaker nobody references is garbage, and stops being reported:
	// the demo keeps this one until its metrics have been read, as a
	// program keeps its breakers for as long as it calls through them.
	runtime.KeepAlive(pricing)
	fmt.Fprintln(w, "\nMetrics (from a manual reader), each series with its value:")
	printMetrics(w, rm)
	fmt.Fprintln(w, "\nPrometheus shows them as levee_circuit_breaker_state, levee_circuit_breaker_calls_total,")
	fmt.Fprintln(w, "levee_circuit_breaker_transitions_total, levee_timeout_exceeded_total and")
	fmt.Fprintln(w, "levee_fallback_executions_total. docs/telemetry.md describes every signal.")
	return nil
}

// awaitSpans waits, for at most changeWait, until the exporter holds n
// spans named name.
func awaitSpans(spans *tracetest.InMemoryExporter, name string, n int) error {
	for deadline := time.Now().Add(changeWait); ; time.Sleep(time.Millisecond) {
		got := 0
		for _, s := range spans.GetSpans() {
			if s.Name == name {
				got++
			}
		}
		if got >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d %s spans after %v, want %d", got, name, changeWait, n)
		}
	}
}

// printSpans prints the spans as trees: each root, then its children, with
// each span's attributes, events and links.
func printSpans(w io.Writer, spans []sdktrace.ReadOnlySpan) {
	slices.SortStableFunc(spans, func(a, b sdktrace.ReadOnlySpan) int { return a.StartTime().Compare(b.StartTime()) })
	children := map[trace.SpanID][]sdktrace.ReadOnlySpan{}
	byID := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	var roots []sdktrace.ReadOnlySpan
	for _, s := range spans {
		byID[s.SpanContext().SpanID()] = s
		if s.Parent().IsValid() {
			children[s.Parent().SpanID()] = append(children[s.Parent().SpanID()], s)
		} else {
			roots = append(roots, s)
		}
	}
	var printTree func(s sdktrace.ReadOnlySpan, depth int)
	printTree = func(s sdktrace.ReadOnlySpan, depth int) {
		indent := strings.Repeat("    ", depth+1)
		where := "child"
		if depth == 0 {
			where = "root"
			if s.Name() == "levee.circuit_breaker.transition" {
				where = "root: no call caused it"
			}
		}
		printItem(w, indent, fmt.Sprintf("%s (%s, %s)", s.Name(), strings.ToLower(s.SpanKind().String()), where), s.Attributes())
		for _, e := range s.Events() {
			printItem(w, indent+"  ", "event "+e.Name, e.Attributes)
		}
		for _, l := range s.Links() {
			if linked, ok := byID[l.SpanContext.SpanID()]; ok {
				printItem(w, indent+"  ", "link to "+linked.Name(), linked.Attributes())
			}
		}
		for _, c := range children[s.SpanContext().SpanID()] {
			printTree(c, depth+1)
		}
	}
	for _, s := range roots {
		printTree(s, 0)
	}
}

// printItem prints a span or an event and its attributes, in the order
// they were set: on one line when they fit in 100 columns, else on the
// lines below.
func printItem(w io.Writer, indent, head string, attrs []attribute.KeyValue) {
	parts := make([]string, len(attrs))
	for i, kv := range attrs {
		parts[i] = string(kv.Key) + "=" + kv.Value.Emit()
	}
	line := indent + head + "  " + strings.Join(parts, " ")
	if len(line) <= 100 {
		fmt.Fprintln(w, line)
		return
	}
	fmt.Fprintln(w, indent+head)
	line = indent + "     "
	for _, part := range parts {
		if len(line)+1+len(part) > 100 && strings.TrimSpace(line) != "" {
			fmt.Fprintln(w, line)
			line = indent + "     "
		}
		line += " " + part
	}
	fmt.Fprintln(w, line)
}

// printMetrics prints each of levee's metrics with the value of each of its
// series.
func printMetrics(w io.Writer, rm metricdata.ResourceMetrics) {
	var all []metricdata.Metrics
	for _, sm := range rm.ScopeMetrics {
		all = append(all, sm.Metrics...)
	}
	slices.SortFunc(all, func(a, b metricdata.Metrics) int { return cmp.Compare(a.Name, b.Name) })
	for _, m := range all {
		sum, ok := m.Data.(metricdata.Sum[int64])
		if !ok {
			continue
		}
		fmt.Fprintf(w, "    %s (%s)\n", m.Name, m.Unit)
		points := slices.Clone(sum.DataPoints)
		slices.SortFunc(points, func(a, b metricdata.DataPoint[int64]) int {
			return cmp.Compare(formatSet(a.Attributes), formatSet(b.Attributes))
		})
		width := 0
		for _, p := range points {
			width = max(width, len(formatSet(p.Attributes)))
		}
		for _, p := range points {
			fmt.Fprintf(w, "        %-*s  %d\n", width, formatSet(p.Attributes), p.Value)
		}
	}
}

// formatSet writes a series' attributes as {key=value ...}, sorted by key.
func formatSet(set attribute.Set) string {
	parts := make([]string, 0, set.Len())
	for _, kv := range set.ToSlice() {
		parts = append(parts, string(kv.Key)+"="+kv.Value.Emit())
	}
	return "{" + strings.Join(parts, " ") + "}"
}
