public import ServiceLifecycle
public import Logging
public import SluiceQueue
import Foundation
public import SluiceCore

/// Runs a service only while this process holds the control plane's lease `name`, so that of
/// several `sluice serve` replicas one fires the schedules and one polls each watch. The holder
/// extends its lease every third of it; one that cannot (dead, cut off, lost it) stops the
/// service when the lease runs out by its own monotonic clock, and a standby replica, asking
/// every quarter lease, takes over once the database says the lease has run out.
public final class LeasedService: Service, Sendable {
    public let name: String
    let holder: String
    let seconds: Double
    let store: any LeaseStore
    let logger: Logger
    let inner: any Service

    public init(_ inner: any Service, lease name: String, holder: String, seconds: Double, store: any LeaseStore, logger: Logger) {
        self.inner = inner
        self.name = name
        self.holder = holder
        self.seconds = seconds
        self.store = store
        self.logger = logger
    }

    /// This process's name on the leases it holds: host, pid and a random tail (a restarted
    /// process is a new holder).
    public static func holderName() -> String {
        "\(ProcessInfo.processInfo.hostName):\(ProcessInfo.processInfo.processIdentifier):\(UUID().uuidString.prefix(8).lowercased())"
    }

    var stopping: Bool { Task.isCancelled || Task.isShuttingDownGracefully }

    public func run() async throws {
        var waiting = false
        while !stopping {
            var token: Int64? = nil
            let asked = ContinuousClock.now
            do {
                token = try await store.acquireLease(name: name, holder: holder, seconds: seconds)
            } catch {
                logger.warning("cannot ask for the lease", metadata: ["lease": "\(name)", "error": "\(error)"])
            }
            if let token {
                logger.info("holding the lease: running here", metadata: ["lease": "\(name)", "token": "\(token)"])
                waiting = false
                try await lead(token, asked: asked)
                continue
            }
            if !waiting { logger.info("another replica holds the lease: standing by", metadata: ["lease": "\(name)"]) }
            waiting = true
            await pause(seconds / 4)
        }
        try? await store.releaseLease(name: name, holder: holder)
    }

    /// Runs the service while the lease lasts; returns when it ended (shutdown) or the lease was lost.
    func lead(_ token: Int64, asked: ContinuousClock.Instant) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await self.inner.run() }
            group.addTask { await self.keep(token, asked: asked) }
            _ = try await group.next()
            group.cancelAll()
            try await group.waitForAll()
        }
    }

    /// Extends the lease until it is lost, shutdown begins, or the task is cancelled. An
    /// answer that does not come before the lease would run out counts as no answer (a cut
    /// link leaves a query hanging).
    func keep(_ token: Int64, asked: ContinuousClock.Instant) async {
        var extended = asked  // the lease runs out no sooner than `seconds` after it was asked for
        while !stopping {
            await pause(seconds / 3)
            if stopping { return }
            let asking = ContinuousClock.now
            let (name, holder, seconds, store) = (self.name, self.holder, self.seconds, self.store)
            let answer = await Self.answer(by: extended + .seconds(seconds * 0.9)) { () async -> Result<Int64?, SluiceError> in
                do throws(SluiceError) { return .success(try await store.acquireLease(name: name, holder: holder, seconds: seconds)) } catch { return .failure(error) }
            }
            switch answer {
            case .success(let t)? where t == token:
                extended = asking
            case .success?:
                logger.warning("lost the lease: another replica took over; stopping here", metadata: ["lease": "\(name)"])
                return
            case .failure(let error)?:
                logger.warning("cannot extend the lease", metadata: ["lease": "\(name)", "error": "\(error)"])
            case nil:
                logger.warning("lease not extended for its whole period; stopping here", metadata: ["lease": "\(name)"])
                return
            }
            if ContinuousClock.now - extended >= .seconds(seconds * 0.9) {
                logger.warning("lease not extended for its whole period; stopping here", metadata: ["lease": "\(name)"])
                return
            }
        }
    }

    /// `body`'s result, or nil if it has not come by `deadline` (the body is left to finish on its own).
    static func answer<T: Sendable>(by deadline: ContinuousClock.Instant, _ body: @escaping @Sendable () async -> T) async -> T? {
        let shot = OneShot<T?>()
        let timer = Task {
            guard (try? await Task.sleep(until: deadline, clock: .continuous)) != nil else { return }
            shot.set(nil)
        }
        Task {
            let v = await body()
            timer.cancel()
            shot.set(v)
        }
        return await shot.value()
    }

    /// Sleeps up to `s` seconds, waking early for cancellation or shutdown.
    func pause(_ s: Double) async {
        let end = ContinuousClock.now + .seconds(s)
        while ContinuousClock.now < end && !stopping {
            try? await Task.sleep(for: min(.milliseconds(100), end - ContinuousClock.now))
        }
    }
}
