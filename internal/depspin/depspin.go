//go:build levee_depspin

// Package depspin pins modules the work in progress will import, so that
// go mod tidy keeps them while several changes land at once. Temporary.
package depspin

import (
	_ "github.com/prometheus/client_golang/prometheus"
	_ "go.opentelemetry.io/otel/exporters/prometheus"
	_ "go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	_ "go.opentelemetry.io/otel/sdk/metric"
	_ "go.opentelemetry.io/otel/sdk/metric/metricdata/metricdatatest"
	_ "go.opentelemetry.io/otel/sdk/trace/tracetest"
	_ "go.uber.org/goleak"
	_ "pgregory.net/rapid"
)
