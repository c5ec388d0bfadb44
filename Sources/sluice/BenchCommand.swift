import ArgumentParser
import SluiceRuntime
import SluiceConfig
import Foundation

/// `sluice bench`: measurements of this machine and database, as River's `river bench`.
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure the job queue on this machine and database.",
        subcommands: [Queue.self]
    )

    /// Enqueues no-op jobs, then workers claim and complete them through the control plane's
    /// own driver: jobs/s and the latency of each claim and completion.
    struct Queue: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "queue",
            abstract: "Enqueue N no-op jobs, then let W workers claim and complete them; print jobs/s and latencies.",
            discussion: "Use a throwaway database: the jobs stay behind (entity `_bench`).\n\nExample:\n  sluice bench queue --database postgres://u@db/bench --jobs 100000 --workers 4"
        )

        @OptionGroup var shared: SharedOptions
        @Option(help: "Jobs to enqueue.") var jobs = 100_000
        @Option(help: "Workers claiming at once (each with its own connection).") var workers = 1
        @Option(help: "Jobs a worker claims at once.") var batch = 10
        @Option(help: "Tasks enqueueing at once.") var producers = 4
        @Flag(help: "Complete each claimed batch in one call instead of job by job.") var batchCompletions = false
        @Flag(help: "One JSON object instead of text.") var json = false

        func validate() throws {
            guard (1...10_000_000).contains(jobs), (1...256).contains(workers), (1...1_000).contains(batch), (1...64).contains(producers) else {
                throw ValidationError("--jobs 1...10000000, --workers 1...256, --batch 1...1000, --producers 1...64")
            }
        }

        func run() async throws {
            var config = try shared.start()
            config.worker.concurrency = max(config.worker.concurrency, workers, producers)  // connections enough for all
            let (jobs, workers, batch, producers, together) = (jobs, workers, batch, producers, batchCompletions)
            let report = try await Runtime.with(config) { rt in
                try await QueueBench(driver: rt.driver, jobs: jobs, workers: workers, batch: batch, producers: producers, batchCompletions: together).run()
            }
            if json {
                let data = try JSONSerialization.data(withJSONObject: report.json, options: [.sortedKeys])
                print(String(decoding: data, as: UTF8.self))
            } else {
                print(report.text)
            }
        }
    }
}
