public import ServiceLifecycle
import Synchronization
import Foundation

/// Does one pass of some work every `every` seconds until shutdown: firing the due scheduled
/// pipelines (each once, catching up missed firings in one run), or taking over the runs
/// whose process died.
public final class PeriodicService: Service, @unchecked Sendable {
    let every: Double
    let pass: @Sendable () async -> Void
    let stopping = Atomic<Bool>(false)

    public init(every: Double, _ pass: @escaping @Sendable () async -> Void) {
        self.every = every
        self.pass = pass
    }

    /// The scheduler: every `every` seconds (30 by default) each due pipeline runs once.
    public static func scheduler(_ execution: PipelineExecution, every: Double = 30) -> PeriodicService {
        PeriodicService(every: every) {
            do { _ = try await execution.tick(now: Date()) } catch { execution.log("schedule: \(error)") }
        }
    }

    /// Takes over, every `every` seconds, the runs whose process died (``PipelineExecution/takeOverAbandoned()``).
    public static func runTakeover(_ execution: PipelineExecution, every: Double) -> PeriodicService {
        PeriodicService(every: every) { _ = await execution.takeOverAbandoned() }
    }

    public func run() async throws {
        await withGracefulShutdownHandler {
            while !self.stopping.load(ordering: .relaxed) && !Task.isCancelled {
                await self.pass()
                for _ in 0..<max(1, Int(every * 10)) where !self.stopping.load(ordering: .relaxed) { try? await Task.sleep(nanoseconds: 100_000_000) }
            }
        } onGracefulShutdown: {
            self.stopping.store(true, ordering: .relaxed)
        }
    }
}
