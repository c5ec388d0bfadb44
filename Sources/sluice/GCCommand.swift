import ArgumentParser
import Foundation
import SluiceCore
import SluiceRuntime

/// `sluice gc`: one clean-up pass now (what `sluice serve` does every hour).
struct GCCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gc",
        abstract: "Remove what retention: no longer keeps: upload files, finished jobs' folders, old runs and load summaries; compact export ledgers.",
        discussion: """
            An upload's file goes `retention.uploads_days` (default 7) after its last job completed, \
            and at once when its job found the same bytes already loaded; a queued, running or failed \
            job keeps its file (a retry reads it again). Finished jobs' rows go after `jobs_days` (90), their work folders after `work_days` \
            (7), pipeline run records after `runs_days` (90; each pipeline's latest success is kept, the \
            schedule reads it), `sluice load` summaries after `loads_days` (30). Export ledgers keep runs \
            of consecutive integer keys of delivered batches as ranges (`export_ranges`, default on; \
            exports declared with `resend_changed` keep every key). `sluice serve` runs the same pass \
            every hour.

            Examples:
              sluice gc --dry-run
              sluice gc --json
            """
    )

    @Flag(help: "Say what would be removed; remove nothing.")
    var dryRun = false

    @Flag(help: "Print the report as JSON.")
    var json = false

    @OptionGroup var shared: SharedOptions

    func run() async throws {
        let config = try shared.start()
        let (dryRun, json) = (dryRun, json)
        do {
            try await Runtime.with(config) { runtime in
                let report = try await Cleanup.run(runtime, dryRun: dryRun)
                if json {
                    let enc = JSONEncoder()
                    enc.outputFormatting = [.sortedKeys]
                    print(String(decoding: try enc.encode(report), as: UTF8.self))
                } else {
                    print(report.summary)
                }
            }
        } catch let e as SluiceError {
            throw fail(e.description)
        }
    }
}
