package dashboard_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine is still running once
// they have all finished: a stream must end with its client.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
