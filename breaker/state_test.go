package breaker_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/levee-go/levee/breaker"
)

func TestState_String(t *testing.T) {
	tests := []struct {
		state breaker.State
		want  string
	}{
		{breaker.Closed, "closed"},
		{breaker.Open, "open"},
		{breaker.HalfOpen, "half-open"},
		{breaker.State(7), "State(7)"},
		{breaker.State(-1), "State(-1)"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.state.String())
		})
	}
}

func TestState_ZeroValueIsClosed(t *testing.T) {
	var s breaker.State
	assert.Equal(t, breaker.Closed, s)
}
