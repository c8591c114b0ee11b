// Package simulate makes a mesh of many workloads, and traffic between
// them, that exists only in memory: for measuring the dashboard at sizes
// no test machine runs as processes.
package simulate
