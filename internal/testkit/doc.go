// Package testkit holds the helpers that tests across Causeway share:
// waiting on a condition, picking free loopback ports, stopping a process
// started by a test (SIGTERM, a grace, then SIGKILL), building the causeway
// binary once per test binary; ADS test clients; loggers, metric reads and
// xDS proto builders; and the checks table tests repeat (a wanted error,
// strings an output must hold). It is a normal package so that test
// packages and internal/testenv can import it; production code does not.
package testkit
