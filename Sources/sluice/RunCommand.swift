import ArgumentParser
import Foundation
import SluiceRuntime
import SluiceConfig
import SluiceCore
import SluiceLoad
import SluiceStorage
import SluiceWatch
import SluiceWorker
import SluiceQueue
import SluiceExport
import Logging
import Synchronization

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a pipeline declared in sluice.yml once: read its source, apply its steps, load the rows.",
        discussion: """
            Each file of the source (a folder, a file, s3://bucket/prefix/, ftp://…, an http(s) URL \
            or table:NAME, matched by the pipeline's glob) is read a row at a time and sent through \
            the steps; the rows kept are loaded into the pipeline's entity in one transaction (with \
            its sql steps), then delivered by its export, if any. Rows whose values do not cast are \
            rejected and listed, not loaded. A pipeline declared `staged: true` runs over the queue \
            instead: its extract, enrich and load stages are jobs any `sluice worker --stage …` \
            takes; this command queues the files and waits for the run to finish.
            
            Examples:
              sluice run geo
              sluice run geo --from 2026-11-01 --to 2026-11-02 --no-downstream
              sluice run geo --reprocess --json
            """
    )

    @Argument(help: "The pipeline's name.") var name: String
    @Option(help: "Backfill: only source files modified at or after this time (ISO 8601, or YYYY-MM-DD).") var from: String?
    @Option(help: "Backfill: only source files modified before this time.") var to: String?
    @Flag(help: "Do not run the pipelines declared `after:` this one.") var noDownstream = false
    @Option(help: "Staged pipelines: stage jobs this process runs at once while it waits (default: worker.concurrency; 0 leaves them to `sluice worker`s).") var workers: Int?
    @Option(help: "Staged pipelines: take over run ID, still `running` because the process that started it died (its queued work is kept, nothing is queued twice).") var resume: Int64?
    @Flag(help: "Exit 4 (the run recorded as failed) when the source matches no file.") var failIfEmpty = false
    @Flag(help: "Read every file again, also those an earlier run loaded (each file version, and each content, is otherwise read once).") var reprocess = false
    @Flag(help: "Print each run as JSON: its state, the pipeline's counts, and the load's summary under \"load\".") var json = false
    @Flag(help: "No progress output.") var quiet = false
    @OptionGroup var shared: SharedOptions

    static func date(_ text: String) throws -> Date {
        let f = ISO8601DateFormatter()
        if let d = f.date(from: text) { return d }
        f.formatOptions = [.withFullDate]
        if let d = f.date(from: text) { return d }
        throw ValidationError("'\(text)' is not a date (2026-11-01 or 2026-11-01T06:00:00Z)")
    }

    func run() async throws {
        let config = try shared.start()
        guard config.pipelines[name] != nil else {
            throw fail("no pipeline '\(name)' in \(config.path ?? "sluice.yml")\(Suggestion.hint(for: name, in: config.pipelines.keys)) (declared: \(config.pipelines.keys.sorted().joined(separator: ", ")))")
        }
        let window = (try from.map(Self.date), try to.map(Self.date))
        let options = PipelineExecution.Options(workers: workers, failIfEmpty: failIfEmpty, reprocess: reprocess)
        // --json: one object per run (its state and the pipeline's counts, with the load's
        // summary under "load"), printed once the run is recorded.
        let lastLoad = Mutex<String?>(nil)
        let quiet = quiet
        let reporter = !json ? PipelineReporter.shell(quiet: quiet, json: false) : PipelineReporter(
            log: { line in if !quiet { FileHandle.standardError.write(Data((line + "\n").utf8)) } },
            loadFinished: { _, outcome in
                switch outcome {
                case .loaded(let r), .failed(let r?): lastLoad.withLock { $0 = Summary.json(r) }
                case .failed(nil): break
                }
            })
        let (name, noDownstream, resume, json) = (name, noDownstream, resume, json)
        do {
            try await Runtime.with(config) { runtime in
                let exec = PipelineExecution(config: config, runtime: runtime, options: options, reporter: reporter)
                func check(_ outcome: PipelineExecution.RunOutcome, _ pipeline: String) async throws {
                    if json, let run = try await runtime.driver.runs(pipeline: pipeline, limit: 1).first {
                        let enc = JSONEncoder()
                        enc.dateEncodingStrategy = .iso8601
                        var object = try JSONSerialization.jsonObject(with: try enc.encode(run)) as? [String: Any] ?? [:]
                        if let load = lastLoad.withLock({ l in defer { l = nil }; return l }) {
                            object["load"] = try JSONSerialization.jsonObject(with: Data(load.utf8))
                        }
                        print(String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]), as: UTF8.self))
                    }
                    switch outcome {
                    case .succeeded: return
                    case .failed: throw ExitCode(1)
                    case .empty: throw ExitCode(4)
                    }
                }
                if let resume {
                    try await check(try await exec.resume(name, run: resume), name)
                    return
                }
                let downstream = noDownstream ? [] : try PipelineDAG.downstream(of: name, config.pipelines.mapValues(\.after))
                try await check(try await exec.run(name, scheduledFor: nil, window: window), name)
                for d in downstream { try await check(try await exec.run(d, scheduledFor: nil, window: window), d) }
            }
        } catch let e as SluiceError {
            throw fail(e.description)
        }
    }
}

struct PipelinesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pipelines",
        abstract: "Check the pipelines declared in sluice.yml.",
        discussion: "Examples:\n  sluice pipelines validate",
        subcommands: [Validate.self]
    )

    struct Validate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Parse and type-check every pipeline; name the line of each mistake.")
        @OptionGroup var shared: SharedOptions

        func run() async throws {
            let config: SluiceConfig
            do { config = try shared.loadConfig() } catch { throw fail("\(error)") }
            var failed = false
            for name in config.pipelines.keys.sorted() {
                let p = config.pipelines[name]!
                // A local source's first CSV file tells the fields the steps may name.
                var fields = ""
                var source: [String]? = nil
                if p.sourceTable == nil, p.source != Pipeline.uploadSource, !Source.isRemote(p.source),
                   let s = try? Source(p.source, s3: S3Config()), let first = try? await s.objects(glob: p.glob.map { Glob($0) }, asPrefix: true).first,
                   case .local(let root) = s.location.kind {
                    source = PipelineExecution.csvFields(s.isCollection ? (root as NSString).appendingPathComponent(first.key) : root, records: p.textRecords)
                }
                do {
                    if let out = try Pipeline.check(p.steps, fields: source) { fields = "; fields: \(out.joined(separator: ", "))" }
                } catch {
                    FileHandle.standardError.write(Data("error: \(name), step \(error.step + 1) (\(p.steps[error.step].kind)): \(error.message)\n".utf8))
                    failed = true
                    continue
                }
                if config.entity(p.into) == nil && config.mappings[p.into] == nil {
                    print("\(name): \(p.source) → \(p.into) (not declared: its columns will be inferred)\(fields)")
                } else {
                    print("\(name): \(p.source) → \(p.into), \(p.steps.count) steps\(fields)")
                }
            }
            if failed { throw ExitCode(1) }
            print("\(config.pipelines.count) pipeline\(config.pipelines.count == 1 ? "" : "s") ok")
        }
    }
}

struct RunsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "runs", abstract: "Pipeline runs, newest first: state, window, counts, error.",
        discussion: "Examples:\n  sluice runs geo --limit 5 --json")
    @Argument(help: "Only this pipeline.") var pipeline: String?
    @Option(help: "How many.") var limit = 20
    @Flag(help: "Print as JSON.") var json = false
    @OptionGroup var shared: SharedOptions

    func run() async throws {
        let config = try shared.start()
        let (pipeline, limit, json) = (pipeline, limit, json)
        try await Runtime.with(config) { runtime in
            let runs = try await runtime.driver.runs(pipeline: pipeline, limit: limit)
            if json {
                let enc = JSONEncoder()
                enc.outputFormatting = [.sortedKeys]
                enc.dateEncodingStrategy = .iso8601
                print(String(decoding: try enc.encode(runs), as: UTF8.self))
                return
            }
            let f = ISO8601DateFormatter()
            for r in runs {
                let window = r.windowFrom.map { f.string(from: $0) } ?? "…"
                print("\(r.id)\t\(r.pipeline)\t\(r.state.rawValue)\t\(f.string(from: r.startedAt))\tfor \(r.scheduledFor.map { f.string(from: $0) } ?? "by hand")\twindow \(window)–\(r.windowTo.map { f.string(from: $0) } ?? "…")\t\(r.counts ?? r.error ?? "")")
            }
        }
    }
}

struct ScheduleCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "schedule",
        abstract: "Run the scheduled pipelines that are due (for cron; `sluice serve` does this every 30 s).",
        discussion: "Examples:\n  sluice schedule tick\n  sluice schedule tick --now 2026-12-01T06:00:00Z",
        subcommands: [Tick.self],
        defaultSubcommand: Tick.self
    )

    struct Tick: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Run what is due now, once each, catching up missed firings in one run.")
        @Option(help: "Act as if it were this time (ISO 8601): for tests and replays.") var now: String?
        @Flag(help: "No progress output.") var quiet = false
        @OptionGroup var shared: SharedOptions

        func run() async throws {
            let config = try shared.start()
            let at = try now.map(RunCommand.date) ?? Date()
            let quiet = quiet
            try await Runtime.with(config) { runtime in
                let ran = try await PipelineExecution(config: config, runtime: runtime, reporter: .shell(quiet: quiet, json: false)).tick(now: at, carryOnLapsed: true)
                print(ran.isEmpty ? "nothing due" : "ran \(ran.joined(separator: ", "))")
            }
        }
    }
}
