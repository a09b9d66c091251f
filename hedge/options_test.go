package hedge_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/levee-go/levee/hedge"
	"github.com/levee-go/levee/internal/testkit"
)

func TestPolicy_RefusesBadSettingsNamingTheOption(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		delay time.Duration
		opts  []hedge.Option
		want  string
	}{
		{"zero delay", 0, nil, "levee: hedge.Policy: delay must be positive, got 0s"},
		{"negative delay", -time.Second, nil, "levee: hedge.Policy: delay must be positive, got -1s"},
		{"no hedge", time.Millisecond, []hedge.Option{hedge.WithMaxHedges(0)}, "levee: hedge.Policy: WithMaxHedges: must be between 1 and 10, got 0"},
		{"too many hedges", time.Millisecond, []hedge.Option{hedge.WithMaxHedges(11)}, "levee: hedge.Policy: WithMaxHedges: must be between 1 and 10, got 11"},
		{"nil release", time.Millisecond, []hedge.Option{hedge.WithRelease[int](nil)}, "levee: hedge.Policy: WithRelease: release must not be nil"},
		{"release of another type", time.Millisecond, []hedge.Option{hedge.WithRelease(func(string) {})},
			"levee: hedge.Policy: WithRelease: release is a func(string), the policy's results are int"},
		{"quantile of one", time.Millisecond, []hedge.Option{hedge.WithQuantileDelay(1, time.Second)}, "levee: hedge.Policy: WithQuantileDelay: q must be in (0, 1), got 1"},
		{"quantile of zero", time.Millisecond, []hedge.Option{hedge.WithQuantileDelay(0, time.Second)}, "levee: hedge.Policy: WithQuantileDelay: q must be in (0, 1), got 0"},
		{"no window", time.Millisecond, []hedge.Option{hedge.WithQuantileDelay(0.95, 0)}, "levee: hedge.Policy: WithQuantileDelay: window must be positive, got 0s"},
		{"nil budget", time.Millisecond, []hedge.Option{hedge.WithBudget(nil)}, "levee: hedge.Policy: WithBudget: budget must not be nil"},
		{"nil option", time.Millisecond, []hedge.Option{nil}, "levee: hedge.Policy: option 0 is nil"},
		{"every problem at once", 0, []hedge.Option{hedge.WithMaxHedges(0)},
			"levee: hedge.Policy: delay must be positive, got 0s; WithMaxHedges: must be between 1 and 10, got 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tt.want, testkit.PanicMessage(t, func() { hedge.Policy[int](tt.delay, tt.opts...) }))
		})
	}
}
