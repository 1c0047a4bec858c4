package e2e

import (
	"fmt"
	"io"
	"sync"
)

// report prints one line per check, "PASS scenario: check: detail" or
// "FAIL …", and counts them for the closing "N passed, M failed" line. Its
// methods are safe for concurrent use.
type report struct {
	mu             sync.Mutex
	w              io.Writer
	passed, failed int
	failures       []string
}

func (r *report) check(scenario, check string, ok bool, format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	verdict := "PASS"
	if ok {
		r.passed++
	} else {
		verdict = "FAIL"
		r.failed++
	}
	line := fmt.Sprintf("%s %s: %s: %s", verdict, scenario, check, fmt.Sprintf(format, args...))
	if !ok {
		r.failures = append(r.failures, line)
	}
	fmt.Fprintln(r.w, line)
}

// note prints a line that is not a check (a skipped check, a measurement).
func (r *report) note(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Fprintf(r.w, format+"\n", args...)
}

// summary is the closing line.
func (r *report) summary() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return fmt.Sprintf("%d passed, %d failed", r.passed, r.failed)
}
