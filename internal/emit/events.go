package emit

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// AddEvent adds the named event to the span in ctx, only when that span is
// recording; otherwise it costs a context lookup and one interface call.
// Pass attributes built ahead (attrs...): a list written out at the call site
// is allocated on every call, recording or not. Policies call it on rare
// paths only (rejections, transitions, timeouts, fallbacks).
func AddEvent(ctx context.Context, name string, attrs ...attribute.KeyValue) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	span.AddEvent(name, trace.WithAttributes(attrs...))
}

// Recording returns the span in ctx when it is recording, else nil: for an
// event whose attributes cost something to build, built only behind it.
func Recording(ctx context.Context) trace.Span {
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		return span
	}
	return nil
}
