//go:build race

package proxy_test

// raceEnabled: the race detector allows 8128 live goroutines, fewer than
// a load test holds.
const raceEnabled = true
