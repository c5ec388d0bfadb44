public import SluiceConfig
public import SluiceLoad
public import SluiceCore
import SluiceQueue
import SluiceStorage
import SluiceWorker
import Foundation

/// Loads files into the configured backend: the one way `sluice load` and pipeline runs write
/// rows into a table (plan, read, sink, commit). Throws ``LoadFailure`` (with the partial
/// report) when the load ran and rolled back, ``SluiceError`` when it could not start.
public enum Loader {
    /// A failed load as one error: a rolled-back load names its rejects file and says the
    /// table was not changed.
    public static func failure(_ error: any Error) -> SluiceError {
        switch error {
        case let e as LoadFailure:
            var message = e.error.description
            if let rf = e.report.files.compactMap(\.rejectsFile).first { message += " (rejected rows: \(rf))" }
            return SluiceError(e.error.code, message + "; the table was not changed")
        case let e as SluiceError:
            return e
        default:
            return SluiceError(.database, "\(error)")
        }
    }

    /// A load shown through `reporter` (its progress, then its summary or the report of the
    /// rollback); a failure is thrown as one message (``failure(_:)``).
    public static func load(_ request: LoadRequest, config: SluiceConfig, reporter: PipelineReporter) async throws(SluiceError) -> LoadReport {
        let observer = reporter.loadObserver()  // the runner holds it weakly: kept here until the end
        do {
            let report = try await load(request, config: config, observer: observer)
            reporter.loadFinished(observer, .loaded(report))
            return report
        } catch {
            reporter.loadFinished(observer, .failed((error as? LoadFailure)?.report))
            throw failure(error)
        }
    }

    /// `sluice load`'s arguments made local (``Source/localize(_:scratch:s3:log:)``): the
    /// paths, and the scratch folder the caller removes afterwards (nil: nothing was fetched).
    public static func localize(_ args: [String], config: SluiceConfig, log: (String) -> Void) async throws(SluiceError) -> (paths: [String], scratch: String?) {
        guard args.contains(where: { Source.isRemote($0) || DeltaRemote.isRemote($0) }) else { return (args, nil) }
        let scratch = (config.stateDir as NSString).appendingPathComponent("downloads/\(UUID().uuidString)")
        do {
            // Delta tables in a store: their snapshot's files, read as a local table.
            var rest: [String] = []
            var tables: [Int: String] = [:]
            for (i, a) in args.enumerated() {
                if DeltaRemote.isRemote(a) {
                    log("fetching the Delta table \(a.dropFirst("delta:".count))")
                    tables[i] = try await DeltaRemote.localize(a, scratch: scratch + "/delta-\(i)", s3: S3Config.from(config.s3))
                } else {
                    rest.append(a)
                }
            }
            var fetched = rest.contains(where: Source.isRemote) ? try await Source.localize(rest, scratch: scratch, s3: S3Config.from(config.s3), log: log) : rest
            for (i, t) in tables.sorted(by: { $0.key < $1.key }) { fetched.insert(t, at: min(i, fetched.count)) }
            return (fetched, scratch)
        } catch {
            try? FileManager.default.removeItem(atPath: scratch)
            throw error
        }
    }

    /// Files split by a mapping into one part per target entity (the caller loads each entity
    /// from its parts, then removes them).
    public struct MappedParts: Sendable {
        public var parts: [String: (files: [String], format: SourceFormat)]
        let dir: String
        public func remove() { try? FileManager.default.removeItem(atPath: dir) }
    }

    /// Splits `files` (named `names` in messages) by `mapping` into parts under the state
    /// folder: CSV, or NDJSON for entities that read CSV in a dialect of their own.
    public static func split(_ files: [String], names: [String], by mapping: JSONMapping, config: SluiceConfig) throws(SluiceError) -> MappedParts {
        var out = MappedParts(parts: [:], dir: (config.stateDir as NSString).appendingPathComponent("splits/\(UUID().uuidString)"))
        let ndjson = Set(config.entities.values.filter { $0.csv != CSVDialect() }.map(\.name))
        do {
            for (i, file) in files.enumerated() {
                for part in try MappingSplitter.split(file: file, mapping: mapping, sourceName: names[i], outDir: "\(out.dir)/\(i)", ndjsonFor: ndjson) {
                    out.parts[part.entity, default: ([], part.format)].files.append(part.path)
                }
            }
        } catch {
            out.remove()
            throw error
        }
        return out
    }

    public static func load(_ request: LoadRequest, config: SluiceConfig, observer: (any LoadObserver & Sendable)? = nil) async throws -> LoadReport {
        try await Backends.with(database: config.targetDatabase, maxConnections: 4, tableSchema: config.targetSchema) { backend in
            let target = backend.target
            var request = request
            if request.sessionTimeZone == nil { request.sessionTimeZone = await target.sessionTimeZone() }
            let plan = try await LoadPlanner.plan(request, config: config) { (table) throws(SluiceError) in try await target.schema(of: table) }
            let scratch = config.workDir
            // A dry run rehearses (applies, counts, rolls back) where the target can.
            let runner = LoadRunner(plan: plan, sink: request.dryRun && !target.supportsRehearsal ? nil : { (e: Entity, m: WriteMode) async throws(SluiceError) -> any LoadSink in
                try? FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)  // else the sink names the folder
                return try await target.sink(entity: e, mode: m, scratchDir: scratch, completing: nil)
            }, stateDir: config.stateDir)
            runner.observer = observer
            runner.shouldContinue = { !Interrupt.requested }
            return try await runner.run()
        }
    }
}
