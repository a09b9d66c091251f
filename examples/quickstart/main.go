// Command quickstart is levee in one screen: a flaky pricing service behind
// a fallback, a circuit breaker and a timeout, the breaker going
// closed -> open -> half-open -> closed while the fallback answers for the
// service, and then every span and metric value the run produced.
//
//	go run ./examples/quickstart
//
// It runs in well under a second and gives the same output every time: the
// service follows a script rather than chance, and the breaker reads a fake
// clock, so its 30-second open timeout passes at once.
package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"os"
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

// callTimeout bounds each call to the pricing service. It is real time (a
// context deadline), kept short so that the one slow call costs the demo
// 20 ms.
const callTimeout = 20 * time.Millisecond

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

	// A fake clock: time moves only when the demo says so. The breaker
	// reads it to know when its open timeout has passed, so the demo skips
	// 30 s in one line instead of waiting for them (a real program leaves
	// WithClock out). Only this goroutine reads or moves it.
	start := time.Date(2026, time.January, 1, 12, 0, 0, 0, time.UTC)
	now := start
	clock := func() time.Time { return now }

	var changes []breaker.StateChange // the breaker's transitions, as they happen
	pricing := breaker.New("pricing",
		breaker.WithFailureThreshold(3),
		breaker.WithOpenTimeout(30*time.Second),
		breaker.WithClock(clock),
		breaker.WithStateChangeListener(func(c breaker.StateChange) { changes = append(changes, c) }),
		breaker.WithTracerProvider(tp),
		breaker.WithMeterProvider(mp),
	)
	service := &pricingService{}
	getPrice := resilience.Wrap(service.price,
		// Outermost: any failure, a rejection included, gets the last known price.
		fallback.Value("41.99 (last known)", fallback.WithName("pricing"),
			fallback.WithTracerProvider(tp), fallback.WithMeterProvider(mp)),
		breaker.Policy[string](pricing),
		// Innermost: a slow call is a failure the breaker counts.
		resilience.Timeout[string](callTimeout, resilience.WithName("pricing"),
			resilience.WithTracerProvider(tp), resilience.WithMeterProvider(mp)),
	)
	tracer := tp.Tracer("quickstart")

	fmt.Fprintln(w, "levee quickstart: a flaky pricing service behind fallback -> breaker -> timeout")
	fmt.Fprintln(w, `  breaker "pricing": opens after 3 consecutive failures, lets a probe through 30s later`)
	fmt.Fprintf(w, "  timeout: %v a call; fallback: the last known price\n\n", callTimeout)
	fmt.Fprintf(w, "%-5s %-6s %-17s %-20s %s\n", "call", "clock", "pricing service", "answer", "breaker")

	printChanges := func() {
		for _, c := range changes {
			line := fmt.Sprintf("%-51s %s -> %s", "", c.From, c.To)
			if c.To == breaker.Open {
				line += fmt.Sprintf(" (%d consecutive failures)", c.ConsecutiveFailures)
			}
			fmt.Fprintln(w, line)
		}
		changes = changes[:0]
	}
	call := func(n int) error {
		ctx, span := tracer.Start(context.Background(), "GET /price",
			trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(attribute.Int("call", n)))
		defer span.End()
		service.did = "not called"
		price, err := getPrice(ctx)
		if err != nil {
			return fmt.Errorf("call %d: %w", n, err)
		}
		fmt.Fprintf(w, "%-5d %-6s %-17s %-20s %s\n", n, "+"+now.Sub(start).String(), service.did, price, pricing.State())
		printChanges()
		return nil
	}

	n := 0
	for range 7 { // three failures open the breaker; the next two are rejected
		n++
		if err := call(n); err != nil {
			return err
		}
		now = now.Add(time.Second)
	}
	now = now.Add(30 * time.Second)
	// Reading State makes the move to half-open: with an injected clock the
	// breaker checks the time when asked (with the real one, a timer moves
	// it). No call is behind this move, so its span is a root span.
	fmt.Fprintf(w, "      ... 30s later (on the fake clock) the open timeout has passed: the breaker is %s\n", pricing.State())
	printChanges()
	for range 2 { // the probe succeeds and closes the breaker; traffic goes on
		n++
		if err := call(n); err != nil {
			return err
		}
		now = now.Add(time.Second)
	}

	fmt.Fprintln(w, "\nSpans (from an in-memory exporter), children indented under their parent:")
	printSpans(w, spans.GetSpans().Snapshots())

	var rm metricdata.ResourceMetrics
	if err := metrics.Collect(context.Background(), &rm); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nMetrics (from a manual reader), each series with its value:")
	printMetrics(w, rm)
	fmt.Fprintln(w, "\nPrometheus shows them as levee_circuit_breaker_state, levee_circuit_breaker_calls_total,")
	fmt.Fprintln(w, "levee_circuit_breaker_transitions_total, levee_timeout_exceeded_total and")
	fmt.Fprintln(w, "levee_fallback_executions_total. docs/telemetry.md describes every signal.")
	return nil
}

// printSpans prints the spans as trees: each root, then its children, with
// each span's attributes and events.
func printSpans(w io.Writer, spans []sdktrace.ReadOnlySpan) {
	slices.SortStableFunc(spans, func(a, b sdktrace.ReadOnlySpan) int { return a.StartTime().Compare(b.StartTime()) })
	children := map[trace.SpanID][]sdktrace.ReadOnlySpan{}
	var roots []sdktrace.ReadOnlySpan
	for _, s := range spans {
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
