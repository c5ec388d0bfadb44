/// The job lifecycle as a pure state machine: every event either moves a job to a new
/// state (with what the driver must change) or is refused. Drivers apply exactly these
/// transitions with guarded UPDATEs; tests drive it transition by transition.
///
/// ```
/// queued ──claim──► processing ──complete──► complete
///   ▲  │                 │ ├──fail(transient, attempts left)──► queued (run after backoff)
///   │  │                 │ ├──fail(terminal or attempts spent)─► error
///   │  │                 │ └──lease expired──► queued (the attempt refunded, one rescue counted),
///   │  │                 │                     or error when rescues are spent
///   │  └─cancel─► cancelled ◄──cancel── processing
///   └────retry (operator)──── error, cancelled
/// ```
public enum JobLifecycle {
    public enum Event: Sendable, Equatable {
        case claim
        case complete
        case fail(transient: Bool)
        case leaseExpired
        case cancel
        case retry
    }

    /// What the driver does besides setting the new state.
    public struct Effect: Sendable, Equatable {
        public var state: JobState
        /// Take a new fencing token (claims, rescues and cancels invalidate the old holder).
        public var newToken: Bool
        /// Count one more attempt (claims).
        public var countAttempt: Bool
        /// Clear the lease (the job is no longer held by a worker).
        public var releaseLease: Bool
        /// Schedule the next attempt after a backoff.
        public var backoff: Bool
        /// Give the job a fresh set of attempts and rescues (operator retry).
        public var resetAttempts: Bool
        /// The worker holding the job died (its lease expired): the attempt it was making is
        /// given back and one rescue is counted instead, against its own limit.
        public var countRescue: Bool
        public var finished: Bool

        init(_ state: JobState, newToken: Bool = false, countAttempt: Bool = false, releaseLease: Bool = false,
             backoff: Bool = false, resetAttempts: Bool = false, countRescue: Bool = false) {
            self.state = state
            self.newToken = newToken
            self.countAttempt = countAttempt
            self.releaseLease = releaseLease
            self.backoff = backoff
            self.resetAttempts = resetAttempts
            self.countRescue = countRescue
            self.finished = state.isFinal
        }
    }

    /// Refused transitions say why, for API errors and logs.
    public struct Refused: Error, Sendable, Equatable, CustomStringConvertible {
        public var from: JobState
        public var event: Event
        public var description: String { "a \(from.rawValue) job cannot take '\(event)'" }
    }

    /// How many times a job is taken back from dead workers before it lands in `error`. Larger
    /// than the attempts a job's own errors get: a crash is usually the host's fault, not the job's.
    public static let defaultMaxRescues = 10

    /// The transition for `event` on a job in `state` that has used `attempts` of `maxAttempts`
    /// and been rescued `rescues` times of `maxRescues`.
    public static func transition(from state: JobState, on event: Event, attempts: Int, maxAttempts: Int,
                                  rescues: Int = 0, maxRescues: Int = defaultMaxRescues) -> Result<Effect, Refused> {
        let refused = Result<Effect, Refused>.failure(Refused(from: state, event: event))
        switch (state, event) {
        case (.queued, .claim):
            return .success(Effect(.processing, newToken: true, countAttempt: true))
        case (.queued, .cancel), (.processing, .cancel):
            return .success(Effect(.cancelled, newToken: true, releaseLease: true))
        case (.processing, .complete):
            return .success(Effect(.complete, releaseLease: true))
        case (.processing, .fail(let transient)):
            if transient && attempts < maxAttempts { return .success(Effect(.queued, releaseLease: true, backoff: true)) }
            return .success(Effect(.error, releaseLease: true))
        case (.processing, .leaseExpired):
            if rescues + 1 < maxRescues { return .success(Effect(.queued, newToken: true, releaseLease: true, countRescue: true)) }
            return .success(Effect(.error, newToken: true, releaseLease: true, countRescue: true))
        case (.error, .retry), (.cancelled, .retry):
            return .success(Effect(.queued, releaseLease: true, resetAttempts: true))
        case (.queued, .complete), (.queued, .fail), (.queued, .leaseExpired), (.queued, .retry),
             (.processing, .claim), (.processing, .retry),
             (.complete, _), (.error, .claim), (.error, .complete), (.error, .fail), (.error, .leaseExpired), (.error, .cancel),
             (.cancelled, .claim), (.cancelled, .complete), (.cancelled, .fail), (.cancelled, .leaseExpired), (.cancelled, .cancel):
            return refused
        }
    }
}
