package hedge

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

// instruments is one pipeline's hedge telemetry. All of it is for calls
// that started a hedge, or would have: a call whose first attempt answers
// within the delay touches none of it. Attribute sets are built here, once.
type instruments struct {
	name            string
	nameAttr        attribute.KeyValue
	started         metric.Int64Counter
	wins            metric.Int64Counter
	budgetExhausted metric.Int64Counter
	nameOpts        []metric.AddOption
	winOpts         [][]metric.AddOption // by the winning attempt's number - 1
}

func newInstruments(tel resilience.Telemetry, maxHedges int) *instruments {
	if tel.Name == "" {
		tel.Name = DefaultName
	}
	meter := tel.Meter()
	started, err := meter.Int64Counter(telemetry.MetricHedgeStarted,
		metric.WithUnit(telemetry.UnitAttempt),
		metric.WithDescription("Hedges started: attempts made beside a call's first because none had answered within the hedge delay."))
	emit.Handle(err)
	wins, err := meter.Int64Counter(telemetry.MetricHedgeWins,
		metric.WithUnit(telemetry.UnitCall),
		metric.WithDescription("Calls that started a hedge and succeeded, by the number of the attempt that answered first (1: the first attempt)."))
	emit.Handle(err)
	budgetExhausted, err := meter.Int64Counter(telemetry.MetricHedgeBudgetExhausted,
		metric.WithUnit(telemetry.UnitAttempt),
		metric.WithDescription("Hedges not started because the retry budget refused them."))
	emit.Handle(err)

	name := telemetry.KeyPolicyName.String(tel.Name)
	ins := &instruments{
		name:            tel.Name,
		nameAttr:        name,
		started:         started,
		wins:            wins,
		budgetExhausted: budgetExhausted,
		nameOpts:        []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(name))},
		winOpts:         make([][]metric.AddOption, maxHedges+1),
	}
	for i := range ins.winOpts {
		ins.winOpts[i] = []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(name, telemetry.KeyHedgeAttempt.Int(i+1)))}
	}
	return ins
}

// hedgeStarted reports attempt number attempt, started after delay: the
// counter, and an event on the caller's span.
func (t *instruments) hedgeStarted(ctx context.Context, attempt int, delay time.Duration) {
	emit.Guard("hedge telemetry", func() {
		if t.started != nil {
			t.started.Add(ctx, 1, t.nameOpts...)
		}
		span := trace.SpanFromContext(ctx)
		if !span.IsRecording() {
			return
		}
		span.AddEvent(telemetry.EventHedgeStarted, trace.WithAttributes(
			t.nameAttr,
			telemetry.KeyHedgeAttempt.Int(attempt),
			telemetry.KeyHedgeDelay.Float64(delay.Seconds()),
		))
	})
}

// won counts a hedged call that attempt number attempt answered.
func (t *instruments) won(ctx context.Context, attempt int) {
	emit.Guard("hedge telemetry", func() {
		if t.wins != nil {
			t.wins.Add(ctx, 1, t.winOpts[attempt-1]...)
		}
	})
}

// budgetRefused counts a hedge the budget refused.
func (t *instruments) budgetRefused(ctx context.Context) {
	emit.Guard("hedge telemetry", func() {
		if t.budgetExhausted != nil {
			t.budgetExhausted.Add(ctx, 1, t.nameOpts...)
		}
	})
}
