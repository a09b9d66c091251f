package retry_test

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/levee-go/levee/internal/testkit"
	"github.com/levee-go/levee/retry"
)

func TestPolicy_RefusesBadSettingsNamingTheOption(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opts []retry.Option
		want string
	}{
		{"no attempt", []retry.Option{retry.WithMaxAttempts(0)}, "levee: retry.Policy: WithMaxAttempts: must be at least 1, got 0"},
		{"negative delay", []retry.Option{retry.WithDelay(-time.Second)}, "levee: retry.Policy: WithDelay: must not be negative, got -1s"},
		{"zero initial backoff", []retry.Option{retry.WithBackoff(0, time.Second)}, "levee: retry.Policy: WithBackoff: initial must be positive, got 0s"},
		{"negative initial backoff", []retry.Option{retry.WithBackoff(-time.Second, time.Second)}, "levee: retry.Policy: WithBackoff: initial must be positive, got -1s"},
		{"max below initial", []retry.Option{retry.WithBackoff(time.Second, time.Millisecond)}, "levee: retry.Policy: WithBackoff: max (1ms) must be at least initial (1s)"},
		{"decorrelated max below initial", []retry.Option{retry.WithDecorrelatedJitter(time.Second, time.Millisecond)},
			"levee: retry.Policy: WithDecorrelatedJitter: max (1ms) must be at least initial (1s)"},
		{"decorrelated negative initial", []retry.Option{retry.WithDecorrelatedJitter(-1, time.Second)},
			"levee: retry.Policy: WithDecorrelatedJitter: initial must be positive, got -1ns"},
		{"zero max duration", []retry.Option{retry.WithMaxDuration(0)}, "levee: retry.Policy: WithMaxDuration: must be positive, got 0s"},
		{"nil predicate", []retry.Option{retry.If(nil)}, "levee: retry.Policy: If: retryable must not be nil"},
		{"nil budget", []retry.Option{retry.WithBudget(nil)}, "levee: retry.Policy: WithBudget: budget must not be nil"},
		{"nil rand", []retry.Option{retry.WithRand(nil)}, "levee: retry.Policy: WithRand: r must not be nil"},
		{"nil option", []retry.Option{retry.WithDelay(0), nil}, "levee: retry.Policy: option 1 is nil"},
		{"every problem at once", []retry.Option{retry.WithMaxAttempts(-1), retry.If(nil)},
			"levee: retry.Policy: WithMaxAttempts: must be at least 1, got -1; If: retryable must not be nil"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tt.want, testkit.PanicMessage(t, func() { retry.Policy[int](tt.opts...) }))
		})
	}
}

func TestPolicy_AcceptsTheEdgesOfEachSetting(t *testing.T) {
	t.Parallel()
	assert.NotPanics(t, func() {
		retry.Policy[int](
			retry.WithMaxAttempts(1),
			retry.WithDelay(0),
			retry.WithBackoff(time.Nanosecond, time.Nanosecond),
			retry.WithDecorrelatedJitter(time.Second, time.Second),
			retry.WithMaxDuration(time.Nanosecond),
			retry.WithRand(rand.New(rand.NewPCG(1, 2))),
			retry.WithBudget(retry.NewBudget(1, 0)),
		)
	})
}

func TestNewBudget_RefusesBadArgumentsNamingThem(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		ratio        float64
		minPerSecond int
		want         string
	}{
		{"zero ratio", 0, 10, "levee: retry.NewBudget: ratio must be in (0, 1], got 0"},
		{"negative ratio", -0.1, 10, "levee: retry.NewBudget: ratio must be in (0, 1], got -0.1"},
		{"ratio above one", 1.5, 10, "levee: retry.NewBudget: ratio must be in (0, 1], got 1.5"},
		{"NaN ratio", nanRatio(), 10, "levee: retry.NewBudget: ratio must be in (0, 1], got NaN"},
		{"negative floor", 0.2, -1, "levee: retry.NewBudget: minPerSecond must not be negative, got -1"},
		{"both", 2, -1, "levee: retry.NewBudget: ratio must be in (0, 1], got 2; minPerSecond must not be negative, got -1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tt.want, testkit.PanicMessage(t, func() { retry.NewBudget(tt.ratio, tt.minPerSecond) }))
		})
	}
	assert.NotPanics(t, func() { retry.NewBudget(1, 0) })
	assert.NotPanics(t, func() { retry.NewBudget(0.0001, 1000) })
}

func nanRatio() float64 {
	zero := 0.0
	return zero / zero
}
