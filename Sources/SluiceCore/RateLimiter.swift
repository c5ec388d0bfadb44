import Dispatch

/// A token bucket: at most `rate` units per second on average, bursts up to `burst`.
public struct RateLimiter: Sendable {
    public let rate: Double
    public let burst: Double
    var tokens: Double
    var last: Double

    public init(rate: Double, burst: Double? = nil, now: Double) {
        self.rate = rate
        self.burst = burst ?? max(1, rate)
        tokens = self.burst
        last = now
    }

    /// Takes `cost` units; returns how long to wait first (0 when they are there).
    public mutating func take(_ cost: Double = 1, now: Double) -> Double {
        tokens = min(burst, tokens + (now - last) * rate)
        last = now
        tokens -= cost
        return tokens >= 0 ? 0 : -tokens / rate
    }
}

/// Seconds on a monotonic clock (for rates and latencies; unaffected by wall-clock changes).
public enum MonotonicClock {
    public static func seconds() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
}
