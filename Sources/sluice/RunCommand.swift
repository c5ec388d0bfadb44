import ArgumentParser
import Foundation
import SluiceConfig
import SluiceCore
import SluiceLoad
import SluiceStorage
import SluiceWatch
import SluiceWorker

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a pipeline declared in sluice.yml once: read its source, apply its steps, load the rows.",
        discussion: """
            Each file of the source (a folder, a file, or s3://bucket/prefix/, matched by the \
            pipeline's glob) is read a row at a time and sent through the steps (select, rename, \
            cast, filter, derive, dedupe); the rows kept are loaded into the pipeline's entity in \
            one transaction. Rows whose values do not cast are rejected and listed, not loaded.
            """
    )

    @Argument(help: "The pipeline's name.") var name: String
    @Flag(help: "Print the load summary as JSON.") var json = false
    @Flag(help: "No progress output.") var quiet = false
    @OptionGroup var shared: SharedOptions

    func run() async throws {
        Runtime.bootstrapLogging()
        let config: SluiceConfig
        do { config = try shared.loadConfig() } catch { throw fail("\(error)") }
        guard let pipeline = config.pipelines[name] else {
            throw fail("no pipeline '\(name)' in \(config.path ?? "sluice.yml") (declared: \(config.pipelines.keys.sorted().joined(separator: ", ")))")
        }
        let scratch = (config.stateDir as NSString).appendingPathComponent("runs/\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let log: (String) -> Void = { line in if !quiet { FileHandle.standardError.write(Data((line + "\n").utf8)) } }
        var parts: [String] = []
        var total = PipelineRunner.FileResult()
        var figures: [Enricher.Figures] = []
        do {
            try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
            let files = try await Self.sourceFiles(pipeline, config: config, scratch: scratch)
            if files.isEmpty { log("no files in \(pipeline.source)\(pipeline.glob.map { " matching \($0)" } ?? "")") }
            let outcome = try await Runtime.with(config) { runtime in
                var runner = try PipelineRunner(pipeline: pipeline)
                let env = QueueEnrichEnvironment(driver: runtime.driver)
                var results: [(String, PipelineRunner.FileResult, String)] = []
                for (i, f) in files.enumerated() {
                    let out = "\(scratch)/part-\(i).csv"
                    results.append((f.name, try await runner.run(file: f.path, displayName: f.name, out: out, env: env), out))
                }
                return (results, runner.figures)
            }
            figures = outcome.1
            for (name, r, out) in outcome.0 {
                log("\(name): read \(r.read), kept \(r.kept), dropped \(r.dropped), rejected \(r.rejected)")
                for line in r.rejects.prefix(5) { log("  rejected: \(line)") }
                total.read += r.read
                total.kept += r.kept
                total.dropped += r.dropped
                total.rejected += r.rejected
                if r.kept > 0 { parts.append(out) }
            }
        } catch let e as SluiceError {
            throw fail(e.description + "; nothing was loaded")
        }
        for f in figures {
            log("enrich: \(f.keys) distinct keys, \(f.cached) from the cache, \(f.fetched) fetched (\(f.attempts) requests), \(f.failed) failed")
        }
        log("\(pipeline.name): \(total.read) rows read, \(total.dropped) dropped by the steps, \(total.rejected) rejected, \(total.kept) to load into \(pipeline.into)")
        guard !parts.isEmpty else { return }
        var args = parts + ["--into", pipeline.into]
        if let mode = pipeline.mode { args += ["--mode", mode.rawValue] }
        if json { args.append("--json") }
        if quiet { args.append("--quiet") }
        let load = try LoadCommand.parse(args)
        try await load.loadOne(config: config, entity: pipeline.into, files: parts, format: .csv)
    }

    /// The source's files as local paths (objects fetched into `scratch`), with display names.
    static func sourceFiles(_ p: Pipeline, config: SluiceConfig, scratch: String) async throws(SluiceError) -> [(path: String, name: String)] {
        let glob = p.glob.map(Glob.init)
        if !p.source.hasPrefix("s3://"), !p.source.hasPrefix("http"), !FileManager.default.fileExists(atPath: p.source) {
            throw SluiceError(.notFound, "the source \(p.source) does not exist")
        }
        let location = try StorageLocation(p.source)
        let store = try location.store(config: S3Config.from(config.s3))
        if case .local(let root) = location.kind, !location.key.isEmpty {
            return [((root as NSString).appendingPathComponent(location.key), p.source)]  // one file
        }
        if case .http = location.kind {
            let path = "\(scratch)/in-0-\((location.key as NSString).lastPathComponent)"
            _ = try await store.download(location.key, to: path, ifMatch: nil)
            return [(path, p.source)]
        }
        let objects = try await store.listAll(prefix: glob.map { $0.prefix.hasPrefix(location.key) ? $0.prefix : location.key } ?? location.key)
            .filter { !$0.key.hasSuffix("/") && (glob?.matches($0.key) ?? true) }
            .sorted { $0.key < $1.key }
        var out: [(path: String, name: String)] = []
        for (i, o) in objects.enumerated() {
            if case .local(let root) = location.kind {
                out.append(((root as NSString).appendingPathComponent(o.key), o.key))
            } else {
                let path = "\(scratch)/in-\(i)-\((o.key as NSString).lastPathComponent)"
                _ = try await store.download(o.key, to: path, ifMatch: o.etag)
                out.append((path, "\(store.displayName)/\(o.key)"))
            }
        }
        return out
    }
}

struct PipelinesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pipelines",
        abstract: "Check the pipelines declared in sluice.yml.",
        subcommands: [Validate.self]
    )

    struct Validate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Parse and type-check every pipeline; name the line of each mistake.")
        @OptionGroup var shared: SharedOptions

        func run() async throws {
            let config: SluiceConfig
            do { config = try shared.loadConfig() } catch { throw fail("\(error)") }
            for name in config.pipelines.keys.sorted() {
                let p = config.pipelines[name]!
                var fields = ""
                if let out = try? Pipeline.check(p.steps) { fields = "; fields: \(out.joined(separator: ", "))" }
                if config.entity(p.into) == nil && config.mappings[p.into] == nil {
                    print("\(name): \(p.source) → \(p.into) (not declared: its columns will be inferred)\(fields)")
                } else {
                    print("\(name): \(p.source) → \(p.into), \(p.steps.count) steps\(fields)")
                }
            }
            print("\(config.pipelines.count) pipeline\(config.pipelines.count == 1 ? "" : "s") ok")
        }
    }
}
