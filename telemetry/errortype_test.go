package telemetry_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"testing"

	"github.com/stretchr/testify/assert"
	semconv "go.opentelemetry.io/otel/semconv/v1.42.0"

	"github.com/levee-go/levee/breaker"
	"github.com/levee-go/levee/resilience"
	"github.com/levee-go/levee/telemetry"
)

// quotaError names its own error.type, as ErrorTyper allows.
type quotaError struct{}

func (quotaError) Error() string     { return "quota exceeded for tenant 42" }
func (quotaError) ErrorType() string { return "quota" }

// blankTypeError has an ErrorType method that names nothing: the Go type
// names it instead, as the semantic conventions' helper does.
type blankTypeError struct{}

func (blankTypeError) Error() string     { return "tenant 42 over quota" }
func (blankTypeError) ErrorType() string { return "" }

// valueError is a named non-pointer error type.
type valueError struct{ msg string }

func (e valueError) Error() string { return e.msg }

func openError() error {
	b := breaker.New("payments", breaker.WithFailureThreshold(1))
	_ = b.Call(context.Background(), func(context.Context) error { return errors.New("down") })
	return b.Call(context.Background(), func(context.Context) error { return nil })
}

func TestErrorType_LeveesOwnValues(t *testing.T) {
	t.Parallel()
	rejected := openError()
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"nil", nil, telemetry.ErrorTypeOther},
		{"levee timeout", resilience.ErrTimeout, telemetry.ErrorTypeTimeout},
		{"levee timeout wrapped with %w", fmt.Errorf("fetch: %w", resilience.ErrTimeout), telemetry.ErrorTypeTimeout},
		{"breaker rejection", rejected, telemetry.ErrorTypeCircuitOpen},
		{"breaker rejection wrapped with %w", fmt.Errorf("pay: %w", rejected), telemetry.ErrorTypeCircuitOpen},
		{"context deadline", context.DeadlineExceeded, telemetry.ErrorTypeTimeout},
		{"context deadline wrapped with %w", fmt.Errorf("query: %w", context.DeadlineExceeded), telemetry.ErrorTypeTimeout},
		{"context canceled", context.Canceled, telemetry.ErrorTypeCanceled},
		{"context canceled wrapped with %w", fmt.Errorf("query: %w", context.Canceled), telemetry.ErrorTypeCanceled},
		{"own ErrorType method", quotaError{}, "quota"},
		{"own ErrorType method wrapped with %w", fmt.Errorf("charge: %w", quotaError{}), "quota"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tt.want, telemetry.ErrorType(tt.err))
		})
	}
}

// Where levee has no better value, ErrorType says what the semantic
// conventions' own helper says.
func TestErrorType_AgreesWithTheSemanticConventionsHelper(t *testing.T) {
	t.Parallel()
	pathErr := &fs.PathError{Op: "open", Path: "/secret/user-input", Err: fs.ErrNotExist}
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"pointer type", pathErr, "*fs.PathError"},
		{"pointer type wrapped with %w", fmt.Errorf("load config: %w", pathErr), "*fs.PathError"},
		{"pointer type wrapped twice", fmt.Errorf("start: %w", fmt.Errorf("load config: %w", pathErr)), "*fs.PathError"},
		{"several %w", fmt.Errorf("%w and %w", pathErr, errors.New("x")), "*fmt.wrapErrors"},
		{"errors.Join", errors.Join(&net.OpError{Op: "dial", Net: "tcp", Err: errors.New("refused")}, errors.New("x")), "*errors.joinError"},
		{"value type", valueError{msg: "user 17 not found"}, "github.com/levee-go/levee/telemetry_test.valueError"},
		{"blank ErrorType", blankTypeError{}, "github.com/levee-go/levee/telemetry_test.blankTypeError"},
		{"errors.New", errors.New("connection refused by 10.0.0.7"), "*errors.errorString"},
		{"fmt.Errorf without %w", fmt.Errorf("status %d", 503), "*errors.errorString"},
		{"errors.New wrapped with %w", fmt.Errorf("call: %w", errors.New("boom")), "*errors.errorString"},
		{"%w of nil", fmt.Errorf("call: %w", nil), "*fmt.wrapError"},
		{"unnamed type", struct{ error }{errors.New("x")}, "struct { error }"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := telemetry.ErrorType(tt.err)
			assert.Equal(t, tt.want, got)
			assert.Equal(t, semconv.ErrorType(tt.err).Value.AsString(), got, "the semconv helper's value")
			assert.NotContains(t, got, tt.err.Error(), "never the message")
		})
	}
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
