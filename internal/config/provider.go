package config

import "context"

// Provider is where the control plane's config comes from: a watched
// directory (Store) or the Kubernetes API. Both publish immutable
// snapshots with rising versions for the same compile and push path; a
// source is chosen at start and never branched on past it.
type Provider interface {
	// Current returns the latest snapshot, never nil; version 0 until
	// the source has read its config once.
	Current() *Snapshot
	// Subscribe returns a channel of new snapshots, latest wins, and a
	// function that stops the subscription and closes the channel.
	Subscribe() (<-chan *Snapshot, func())
	// Run reads the config, publishes the first snapshot, then follows
	// changes until ctx ends.
	Run(ctx context.Context) error
}

var _ Provider = (*Store)(nil)
