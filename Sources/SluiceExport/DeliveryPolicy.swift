public import Foundation
import SluiceCore

/// How one delivery attempt ended, as the exporter saw it.
public enum AttemptResult: Sendable, Equatable {
    /// The receiver answered with this status (and maybe a `Retry-After` header).
    case answered(status: Int, retryAfter: String?)
    /// No answer: connection refused or reset, or the request timed out.
    case transportError(String)
}

/// What to do with a batch after an attempt.
public enum DeliveryDecision: Sendable, Equatable {
    case delivered
    /// Try again after this many seconds.
    case retry(after: Double)
    /// Stop: the receiver refused it for good, or the attempts ran out.
    case deadLetter(reason: String)
}

/// Retry rules for deliveries (pure: time and randomness are passed in). 2xx delivers; 5xx,
/// 408, 429, timeouts and connection errors retry with exponential backoff and full jitter,
/// honouring `Retry-After`; any other status dead-letters at once.
public struct DeliveryPolicy: Sendable, Equatable {
    public var maxAttempts = 8
    public var baseDelay = 0.5
    public var maxDelay = 60.0

    public init(maxAttempts: Int = 8, baseDelay: Double = 0.5, maxDelay: Double = 60) {
        self.maxAttempts = maxAttempts
        self.baseDelay = baseDelay
        self.maxDelay = maxDelay
    }

    /// The decision after attempt number `attempt` (from 1); `random` is uniform in [0, 1).
    public func decide(_ result: AttemptResult, attempt: Int, random: Double, now: Date) -> DeliveryDecision {
        let why: String
        var floor = 0.0
        switch result {
        case .answered(let status, let retryAfter):
            if (200..<300).contains(status) { return .delivered }
            guard status >= 500 || status == 408 || status == 429 else { return .deadLetter(reason: "the receiver answered \(status)") }
            why = "the receiver answered \(status)"
            if let r = retryAfter.flatMap({ Self.retryAfter($0, now: now) }) { floor = min(r, maxDelay * 10) }
        case .transportError(let e):
            why = e
        }
        if attempt >= maxAttempts { return .deadLetter(reason: "\(why) (\(attempt) attempts)") }
        let cap = min(maxDelay, baseDelay * pow(2, Double(attempt - 1)))
        return .retry(after: max(floor, cap * random))
    }

    /// Seconds to wait from a `Retry-After` value: delay-seconds or an HTTP date.
    public static func retryAfter(_ value: String, now: Date) -> Double? { RetryAfter.seconds(value, now: now) }
}
