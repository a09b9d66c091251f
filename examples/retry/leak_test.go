package main

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine is still running once
// they have all finished. (main_test.go holds the demo's own test.)
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
