public import ServiceLifecycle
import Synchronization
import Foundation

/// Fires the scheduled pipelines: every `every` seconds (30 by default), each due one runs
/// once (catching up missed firings in one run), until shutdown.
public final class SchedulerService: Service, @unchecked Sendable {
    let execution: PipelineExecution
    let every: Double
    let stopping = Atomic<Bool>(false)

    public init(execution: PipelineExecution, every: Double = 30) {
        self.execution = execution
        self.every = every
    }

    public func run() async throws {
        await withGracefulShutdownHandler {
            while !self.stopping.load(ordering: .relaxed) && !Task.isCancelled {
                do { _ = try await self.execution.tick(now: Date()) } catch { self.execution.log("schedule: \(error)") }
                for _ in 0..<max(1, Int(every * 10)) where !self.stopping.load(ordering: .relaxed) { try? await Task.sleep(nanoseconds: 100_000_000) }
            }
        } onGracefulShutdown: {
            self.stopping.store(true, ordering: .relaxed)
        }
    }
}
