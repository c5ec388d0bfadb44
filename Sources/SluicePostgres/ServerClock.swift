import Foundation
import Synchronization

/// How far this host's clock is from the PostgreSQL server's, measured once a minute (the
/// midpoint of a round trip), so that leases, retries and rate limits written by hosts whose
/// clocks disagree are judged on one clock, the server's. An offset under a second counts as
/// none: hosts kept in time by NTP write their own times, exactly as given.
final class ServerClock: Sendable {
    struct State {
        var offset = 0.0
        var measured: ContinuousClock.Instant?
    }
    let state = Mutex(State())
    static let every: Duration = .seconds(60)
    static let tolerance = 1.0

    /// The offset when it was measured within the last minute, else nil.
    func current() -> Double? {
        state.withLock { s in
            guard let at = s.measured, ContinuousClock.now - at < Self.every else { return nil }
            return s.offset
        }
    }

    /// The last offset measured (0 before the first).
    var last: Double { state.withLock { $0.offset } }

    /// Records a reading of the server's clock (seconds since 1970) taken between `before` and `after`.
    func record(server: Double, before: Date, after: Date) -> Double {
        let raw = server - (before.timeIntervalSince1970 + after.timeIntervalSince1970) / 2
        let offset = raw.isFinite && abs(raw) >= Self.tolerance ? raw : 0
        state.withLock { $0 = State(offset: offset, measured: .now) }
        return offset
    }
}
