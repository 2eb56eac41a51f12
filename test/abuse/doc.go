// Package abuse plays hostile clients against real Causeway processes (the
// causeway binary built from the working tree, as `causeway serve` and
// `causeway gateway`), each test one attack, and asserts the bound that
// keeps the process and its honest clients safe: memory after the attacker
// leaves, a real proxy's or client's service during the attack, rates and
// caps. The bounds are written in the tests with the measurement they come
// from. Run it with `go test ./test/abuse/` (not in -short runs).
package abuse
