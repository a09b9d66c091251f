package testkit

import (
	"log"
	"sync"
	"sync/atomic"
	"testing"

	"go.opentelemetry.io/otel"
)

// OTelErrors records what reaches the OpenTelemetry error handler
// (otel.Handle). Get one from CaptureOTelErrors.
type OTelErrors struct {
	active atomic.Bool
	mu     sync.Mutex
	errs   []error
}

// Handle records err while the test that installed h runs, and logs it as
// the default handler does afterwards.
func (h *OTelErrors) Handle(err error) {
	if !h.active.Load() {
		// After the test: behave as the default handler does. (The first
		// SetErrorHandler makes the default handler forward here for good.)
		log.Print(err)
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.errs = append(h.errs, err)
}

// Take returns the errors recorded since the last Take.
func (h *OTelErrors) Take() []error {
	h.mu.Lock()
	defer h.mu.Unlock()
	errs := h.errs
	h.errs = nil
	return errs
}

// CaptureOTelErrors installs an error handler that records what reaches
// otel.Handle until the test ends, then puts the previous handler back. It
// changes an OpenTelemetry global: only a test that is not parallel may call
// it (parallel tests are paused while it runs).
func CaptureOTelErrors(t testing.TB) *OTelErrors {
	h := &OTelErrors{}
	h.active.Store(true)
	previous := otel.GetErrorHandler()
	otel.SetErrorHandler(h)
	t.Cleanup(func() {
		otel.SetErrorHandler(previous)
		h.active.Store(false)
	})
	return h
}
