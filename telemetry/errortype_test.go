package telemetry_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/levee-go/levee/breaker"
	"github.com/levee-go/levee/resilience"
	"github.com/levee-go/levee/telemetry"
)

// quotaError names its own error.type, as ErrorTyper allows.
type quotaError struct{}

func (quotaError) Error() string     { return "quota exceeded for tenant 42" }
func (quotaError) ErrorType() string { return "quota" }

// valueError is a named non-pointer error type.
type valueError struct{ msg string }

func (e valueError) Error() string { return e.msg }

func TestErrorType_BoundedValues(t *testing.T) {
	t.Parallel()
	pathErr := &fs.PathError{Op: "open", Path: "/secret/user-input", Err: fs.ErrNotExist}
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"nil", nil, ""},
		{"levee timeout", resilience.ErrTimeout, telemetry.ErrorTypeTimeout},
		{"levee timeout wrapped with %w", fmt.Errorf("fetch: %w", resilience.ErrTimeout), telemetry.ErrorTypeTimeout},
		{"breaker rejection", &breaker.OpenError{Name: "payments", State: breaker.Open}, telemetry.ErrorTypeCircuitOpen},
		{"breaker rejection wrapped with %w", fmt.Errorf("pay: %w", &breaker.OpenError{Name: "payments"}), telemetry.ErrorTypeCircuitOpen},
		{"context deadline", context.DeadlineExceeded, telemetry.ErrorTypeTimeout},
		{"context deadline wrapped with %w", fmt.Errorf("query: %w", context.DeadlineExceeded), telemetry.ErrorTypeTimeout},
		{"context canceled", context.Canceled, telemetry.ErrorTypeCanceled},
		{"context canceled wrapped with %w", fmt.Errorf("query: %w", context.Canceled), telemetry.ErrorTypeCanceled},
		{"own ErrorType method", quotaError{}, "quota"},
		{"own ErrorType method wrapped with %w", fmt.Errorf("charge: %w", quotaError{}), "quota"},
		{"pointer type", pathErr, "*fs.PathError"},
		{"pointer type wrapped with %w", fmt.Errorf("load config: %w", pathErr), "*fs.PathError"},
		{"pointer type wrapped twice", fmt.Errorf("start: %w", fmt.Errorf("load config: %w", pathErr)), "*fs.PathError"},
		{"first of several %w", fmt.Errorf("%w and %w", pathErr, errors.New("x")), "*fs.PathError"},
		{"errors.Join", errors.Join(&net.OpError{Op: "dial", Net: "tcp", Err: errors.New("refused")}, errors.New("x")), "*net.OpError"},
		{"value type", valueError{msg: "user 17 not found"}, "telemetry_test.valueError"},
		{"errors.New", errors.New("connection refused by 10.0.0.7"), telemetry.ErrorTypeOther},
		{"fmt.Errorf without %w", fmt.Errorf("status %d", 503), telemetry.ErrorTypeOther},
		{"errors.New wrapped with %w", fmt.Errorf("call: %w", errors.New("boom")), telemetry.ErrorTypeOther},
		{"%w of nil", fmt.Errorf("call: %w", nil), telemetry.ErrorTypeOther},
		{"unnamed type", struct{ error }{errors.New("x")}, telemetry.ErrorTypeOther},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tt.want, telemetry.ErrorType(tt.err))
			if tt.err != nil {
				assert.NotContains(t, telemetry.ErrorType(tt.err), tt.err.Error(), "never the message")
			}
		})
	}
}

func TestErrorTypeAttr_IsTheSemanticConventionKey(t *testing.T) {
	t.Parallel()
	kv := telemetry.ErrorTypeAttr(resilience.ErrTimeout)
	assert.Equal(t, "error.type", string(kv.Key))
	assert.Equal(t, "timeout", kv.Value.AsString())
}

// Not parallel: testing.AllocsPerRun counts every allocation in the process.
func TestErrorType_AllocatesNothing(t *testing.T) {
	errs := map[string]error{
		"levee error":    fmt.Errorf("fetch: %w", resilience.ErrTimeout),
		"context error":  fmt.Errorf("fetch: %w", context.Canceled),
		"Go type name":   fmt.Errorf("fetch: %w", &fs.PathError{}),
		"plain errors":   errors.New("x"),
		"own error.type": quotaError{},
	}
	for name, err := range errs {
		allocs := testing.AllocsPerRun(100, func() { _ = telemetry.ErrorType(err) })
		assert.Zero(t, allocs, "%s: allocations per call", name)
	}
}
