package main

import "fmt"

// exitError carries an exit status other than 0 and 1 (or an explicit 1)
// from a subcommand to main.
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e exitError) Unwrap() error { return e.err }
