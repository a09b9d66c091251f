package leveegrpc

import (
	"github.com/levee-go/levee/resilience"
	"google.golang.org/grpc/status"
)

// Option configures an interceptor at construction. Every option applies to
// the client and the server interceptors alike.
type Option func(*config)

type config struct {
	isFailure func(*status.Status) bool
	telemetry resilience.Telemetry
	problems  []string
}

func newConfig(opts []Option) config {
	c := config{isFailure: DefaultIsFailure}
	for _, opt := range opts {
		if opt == nil {
			c.problems = append(c.problems, "an Option is nil")
			continue
		}
		opt(&c)
	}
	return c
}

// WithIsFailure sets which statuses count as failures for the policies: on
// the client, the status a call ended with; on the server, the status of the
// error a handler returned. A status that is not a failure is a success for
// the policies (the server answered), and reaches the caller unchanged.
// Whatever isFailure says, a call whose own context ended and a CANCELLED
// status count as neither success nor failure. Default: DefaultIsFailure. To
// count one more code, extend it:
//
//	leveegrpc.WithIsFailure(func(s *status.Status) bool {
//		return leveegrpc.DefaultIsFailure(s) || s.Code() == codes.Aborted
//	})
//
// isFailure must be safe for concurrent use and must not be nil; the
// interceptor's constructor panics otherwise.
func WithIsFailure(isFailure func(*status.Status) bool) Option {
	return func(c *config) {
		if isFailure == nil {
			c.problems = append(c.problems, "WithIsFailure: isFailure must not be nil")
		}
		c.isFailure = isFailure
	}
}

// WithTelemetry names the pipeline and gives it providers, as
// resilience.WrapWith does: the timeouts and fallbacks among the policies
// report under it. Fields left zero come from the first breaker among the
// policies; with none, the pipeline is named "leveegrpc.client" or
// "leveegrpc.server" and reports to the global providers.
func WithTelemetry(tel resilience.Telemetry) Option {
	return func(c *config) { c.telemetry = tel }
}

// pipelineTelemetry is the Telemetry a pipeline of policies is built with:
// c's, its name defaulting to fallbackName when no policy names the
// pipeline.
func pipelineTelemetry[T any](c config, policies []resilience.Policy[T], fallbackName string) resilience.Telemetry {
	tel := c.telemetry
	if tel.Name != "" {
		return tel
	}
	for _, p := range policies {
		if src, ok := p.(resilience.TelemetrySource); ok && src.Telemetry().Name != "" {
			return tel
		}
	}
	tel.Name = fallbackName
	return tel
}

// check panics, naming the constructor, if an option was refused.
func (c config) check(constructor string) {
	if len(c.problems) > 0 {
		panic("levee: leveegrpc." + constructor + ": " + c.problems[0])
	}
}
