package testkit

import "time"

// WaitTimeout is how long a test waits for a condition that a working
// component meets at once: long enough for a loaded CI machine, short
// enough that a broken one fails the test soon.
const WaitTimeout = 10 * time.Second

// Succeeds adapts a check that returns an error to Eventually: "" when
// cond returns nil, else the error's text.
func Succeeds(cond func() error) func() string {
	return func() string {
		if err := cond(); err != nil {
			return err.Error()
		}
		return ""
	}
}
