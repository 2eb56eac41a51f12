// Package replicas runs two replicas of the real `causeway serve` (built
// from the working tree) on real API servers (internal/testenv) with
// simulated delta and state-of-the-world proxies under churn, kills and
// stops them in turn, and checks failover: every proxy reconnects to the
// other replica and ends with the correct view, no change is lost, the
// leader Lease never has two valid holders, and only the leader writes the
// root ConfigMaps. The sequence and checks are internal/bench's Failover,
// which `causeway-bench -failover` also runs at a larger size.
package replicas
