package telemetry

import (
	"errors"
	"fmt"
)

// These build one value of each standard-library wrapper type, so that
// ErrorType can recognise them by type without naming unexported types.

func fmtWrapError() error  { return fmt.Errorf("%w", errors.New("x")) }
func fmtWrapErrors() error { return fmt.Errorf("%w %w", errors.New("x"), errors.New("y")) }
func fmtPlainError() error { return fmt.Errorf("x") }
