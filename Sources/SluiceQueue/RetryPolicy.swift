/// Exponential backoff with jitter between attempts: attempt n waits about
/// `base × 2^(n-1)`, scaled by a random factor in [1 - jitter, 1 + jitter], capped at `max`.
public struct RetryPolicy: Sendable, Hashable {
    /// Attempts a job gets before it lands in `error`. The default is 3.
    public var maxAttempts: Int = 3
    /// Wait before the second attempt. The default is 2 seconds.
    public var base: Duration = .seconds(2)
    /// Longest wait. The default is 5 minutes.
    public var max: Duration = .seconds(300)
    /// Relative spread of the random factor. The default is 0.5.
    public var jitter: Double = 0.5

    public init(maxAttempts: Int = 3, base: Duration = .seconds(2), max: Duration = .seconds(300), jitter: Double = 0.5) {
        self.maxAttempts = maxAttempts
        self.base = base
        self.max = max
        self.jitter = jitter
    }

    /// The wait after `attempt` (1-based) failed. `random` must return a value in [0, 1).
    public func delay(afterAttempt attempt: Int, random: Double) -> Duration {
        let exponent = Swift.min(Swift.max(attempt - 1, 0), 30)
        let raw = seconds(base) * Double(1 << exponent)
        let factor = 1 - jitter + 2 * jitter * random
        return .milliseconds(Int64(Swift.min(raw * factor, seconds(max)) * 1000))
    }

    func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18 }
}
