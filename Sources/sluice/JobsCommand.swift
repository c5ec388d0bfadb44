import ArgumentParser
import Foundation
import SluiceRuntime
import SluiceConfig
import SluiceCore
import SluiceQueue
import SluiceWorker

struct JobsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jobs",
        abstract: "Inspect and steer jobs in the control plane.",
        discussion: "Examples:\n  sluice jobs list --state error\n  sluice jobs show 42\n  sluice jobs retry 42",
        subcommands: [List.self, Show.self, Cancel.self, Retry.self]
    )

    /// Runs `body` with the control plane named by the configuration (SQLite or PostgreSQL).
    static func withDriver<T: Sendable>(_ shared: SharedOptions, _ body: @Sendable (any QueueDriver) async throws -> T) async throws -> T {
        Runtime.bootstrapLogging()
        let config = try shared.loadConfig()
        return try await Runtime.with(config) { try await body($0.driver) }
    }

    static func line(_ j: Job) -> String {
        let stats = j.result.map { r in
            let s = r.stats
            if let dup = r.duplicateOf { return "duplicate of job \(dup)" }
            return "read \(s.read), ins \(s.inserted), upd \(s.updated), del \(s.deleted), rej \(s.rejected)"
        } ?? (j.state == .processing ? "\(j.progress.rows) rows so far" : "")
        let err = j.error.map { " — \($0)" } ?? ""
        return "\(j.id)\t\(j.entity)\t\(j.state.rawValue)\tattempt \(j.attempts)/\(j.maxAttempts)\(j.rescues > 0 ? ", rescued \(j.rescues)" : "")\t\(stats)\(err)"
    }

    static func detail(_ j: Job) -> String {
        var lines = ["job \(j.id): \(j.entity), \(j.state.rawValue)",
                     "  source    \(j.spec.source)\(j.spec.fileName.map { " (\($0))" } ?? "")",
                     "  attempts  \(j.attempts) of \(j.maxAttempts)\(j.worker.map { ", held by \($0)" } ?? "")",
                     "  rescues   \(j.rescues) (taken back from workers that died; not counted as attempts)",
                     "  created   \(j.createdAt)"]
        if let s = j.startedAt { lines.append("  started   \(s)") }
        if let f = j.finishedAt { lines.append("  finished  \(f)") }
        if j.state == .processing { lines.append("  progress  \(j.progress.rows) rows, \(j.progress.bytes) bytes") }
        if let r = j.result {
            let s = r.stats
            lines.append("  stats     read \(s.read), inserted \(s.inserted), updated \(s.updated), deleted \(s.deleted), rejected \(s.rejected), skipped \(s.skipped)")
            if let d = r.duplicateOf { lines.append("  duplicate of job \(d) (same SHA-256)") }
            if let p = r.rejectsPath { lines.append("  rejects   \(p)") }
        }
        if let e = j.error { lines.append("  error     \(e)") }
        return lines.joined(separator: "\n")
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List jobs, oldest first.")
        @Option(help: "Only jobs in this state (queued, processing, complete, error, cancelled).")
        var state: String?
        @Option(help: "Only jobs of this entity.")
        var entity: String?
        @Option(help: "Only jobs with an id greater than this.")
        var after: Int64?
        @Option(help: "At most this many.")
        var limit: Int = 100
        @OptionGroup var shared: SharedOptions

        func run() async throws {
            var p = JobListParams(entity: entity, after: after, limit: limit)
            if let state {
                guard let s = JobState(rawValue: state) else { throw ValidationError("unknown state '\(state)'") }
                p.state = s
            }
            let p2 = p
            for j in try await JobsCommand.withDriver(shared, { try await $0.listJobs(p2) }) { print(JobsCommand.line(j)) }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one job.")
        @Argument var id: Int64
        @OptionGroup var shared: SharedOptions
        func run() async throws {
            let id = self.id
            guard let j = try await JobsCommand.withDriver(shared, { try await $0.job(id: id) }) else { throw fail("no job \(id)") }
            print(JobsCommand.detail(j))
        }
    }

    struct Cancel: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Cancel a queued or running job.")
        @Argument var id: Int64
        @OptionGroup var shared: SharedOptions
        func run() async throws {
            let id = self.id
            guard let j = try await JobsCommand.withDriver(shared, { try await $0.cancelJob(JobCancelParams(id: id, now: Date())) }) else {
                throw fail("job \(id) does not exist or is already finished")
            }
            print(JobsCommand.line(j))
        }
    }

    struct Retry: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Queue a job in error or cancelled again, with fresh attempts.")
        @Argument var id: Int64
        @OptionGroup var shared: SharedOptions
        func run() async throws {
            let id = self.id
            guard let j = try await JobsCommand.withDriver(shared, { try await $0.retryJob(JobRetryParams(id: id, now: Date())) }) else {
                throw fail("job \(id) does not exist or is not in error or cancelled")
            }
            print(JobsCommand.line(j))
        }
    }
}
