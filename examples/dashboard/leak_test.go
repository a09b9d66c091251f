package main

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine is still running once
// they have all finished. (browser_test.go drives the page in a real browser.)
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
