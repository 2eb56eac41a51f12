// Package abuse plays hostile and careless clients against the real
// `causeway` binary (built from the working tree) and asserts that each
// attack stays within a bound written in the test: memory that comes back
// after the attacker leaves, a normal proxy served within a time during the
// attack, a rate of responses an attacker can draw, and code that is never
// run on an attacker's behalf. The bounds were chosen from measurements,
// recorded beside them. The tests run in a few tens of seconds and skip
// only under -short (testreq.NotShort).
package abuse
