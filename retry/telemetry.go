package retry

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/levee-go/levee/internal/emit"
	"github.com/levee-go/levee/resilience"
	"github.com/levee-go/levee/telemetry"
)

// attemptOutcome is how an attempt after the first ended.
type attemptOutcome uint8

const (
	attemptSuccess attemptOutcome = iota
	attemptFailure
	attemptIgnored
	numAttemptOutcomes
)

var attemptOutcomeValues = [numAttemptOutcomes]string{
	attemptSuccess: telemetry.OutcomeSuccess,
	attemptFailure: telemetry.OutcomeFailure,
	attemptIgnored: telemetry.OutcomeIgnored,
}

var exhaustedReasons = []string{stopMaxAttempts, stopMaxDuration, stopDeadline, stopMaxDelay}

// instruments is one pipeline's retry telemetry. Every measurement is on a
// path where an attempt has failed already: a call whose first attempt
// succeeds touches none of it. Attribute sets are built here, once, so that
// counting allocates nothing.
type instruments struct {
	name            string
	nameAttr        attribute.KeyValue
	attempts        metric.Int64Counter
	exhausted       metric.Int64Counter
	budgetExhausted metric.Int64Counter
	attemptOpts     [numAttemptOutcomes][]metric.AddOption
	exhaustedOpts   map[string][]metric.AddOption
	nameOpts        []metric.AddOption
}

func newInstruments(tel resilience.Telemetry) *instruments {
	if tel.Name == "" {
		tel.Name = DefaultName
	}
	meter := tel.Meter()
	attempts, err := meter.Int64Counter(telemetry.MetricRetryAttempts,
		metric.WithUnit(telemetry.UnitAttempt),
		metric.WithDescription("Attempts made by retries after each call's first, by outcome."))
	emit.Handle(err)
	exhausted, err := meter.Int64Counter(telemetry.MetricRetryExhausted,
		metric.WithUnit(telemetry.UnitCall),
		metric.WithDescription("Calls that returned an error still worth retrying because a limit stopped the retries, by reason."))
	emit.Handle(err)
	budgetExhausted, err := meter.Int64Counter(telemetry.MetricRetryBudgetExhausted,
		metric.WithUnit(telemetry.UnitCall),
		metric.WithDescription("Calls whose retry the retry budget refused."))
	emit.Handle(err)

	name := telemetry.KeyPolicyName.String(tel.Name)
	ins := &instruments{
		name:            tel.Name,
		nameAttr:        name,
		attempts:        attempts,
		exhausted:       exhausted,
		budgetExhausted: budgetExhausted,
		exhaustedOpts:   make(map[string][]metric.AddOption, len(exhaustedReasons)),
		nameOpts:        []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(name))},
	}
	for o, value := range attemptOutcomeValues {
		ins.attemptOpts[o] = []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(name, telemetry.KeyOutcome.String(value)))}
	}
	for _, reason := range exhaustedReasons {
		ins.exhaustedOpts[reason] = []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(name, telemetry.KeyRetryReason.String(reason)))}
	}
	return ins
}

// scheduled reports a retry about to wait delay before attempt number
// attempt, because of err: an event on the caller's span.
func (t *instruments) scheduled(ctx context.Context, attempt int, delay time.Duration, err error) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	emit.Guard("retry telemetry", func() {
		span.AddEvent(telemetry.EventRetryScheduled, trace.WithAttributes(
			t.nameAttr,
			telemetry.KeyRetryAttempt.Int(attempt),
			telemetry.KeyRetryDelay.Float64(delay.Seconds()),
			telemetry.KeyErrorType.String(telemetry.ErrorType(err)),
		))
	})
}

// attempted counts an attempt after the first, once it has ended.
func (t *instruments) attempted(ctx context.Context, o attemptOutcome) {
	emit.Guard("retry telemetry", func() {
		if t.attempts != nil {
			t.attempts.Add(ctx, 1, t.attemptOpts[o]...)
		}
	})
}

// stopped reports a call that stopped retrying err after attempts
// attempts, for reason stop.
func (t *instruments) stopped(ctx context.Context, stop string, attempts int, err error) {
	emit.Guard("retry telemetry", func() {
		event := telemetry.EventRetryExhausted
		if stop == stopBudget {
			event = telemetry.EventRetryBudgetExhausted
			if t.budgetExhausted != nil {
				t.budgetExhausted.Add(ctx, 1, t.nameOpts...)
			}
		} else if t.exhausted != nil {
			t.exhausted.Add(ctx, 1, t.exhaustedOpts[stop]...)
		}
		span := trace.SpanFromContext(ctx)
		if !span.IsRecording() {
			return
		}
		attrs := []attribute.KeyValue{
			t.nameAttr,
			telemetry.KeyRetryAttempt.Int(attempts),
			telemetry.KeyErrorType.String(telemetry.ErrorType(err)),
		}
		if stop != stopBudget {
			attrs = append(attrs, telemetry.KeyRetryReason.String(stop))
		}
		span.AddEvent(event, trace.WithAttributes(attrs...))
	})
}
