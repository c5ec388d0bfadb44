public import SluiceConfig
public import SluiceLoad
public import SluiceCore
import SluiceSQLite
import SluicePostgres
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

    public static func load(_ request: LoadRequest, config: SluiceConfig, observer: (any LoadObserver & Sendable)? = nil) async throws -> LoadReport {
        try await Backend.with(database: config.database, maxConnections: 4) { backend in
            switch backend {
            case .postgres(let db):
                return try await runOnThread { () -> Result<LoadReport, any Error> in
                    Result {
                        let plan = try LoadPlanner.plan(request, config: config, target: PostgresCatalog(database: db))
                        let runner = LoadRunner(plan: plan, sink: request.dryRun ? nil : { (e: Entity, m: WriteMode) throws(SluiceError) -> any LoadSink in
                            try PostgresLoad(db: db, table: e.table, schema: e.schema, mode: m, evolve: e.evolve)
                        }, stateDir: config.stateDir)
                        runner.observer = observer
                        return try runner.run()
                    }
                }.get()
            case .sqlite(let path):
                let target = request.dryRun ? nil : try SQLiteTarget(path: path)
                let plan = try LoadPlanner.plan(request, config: config, target: target ?? (try? SQLiteTarget(path: path)))
                var sink: LoadRunner.SinkFactory?
                if let target {
                    let scratch = config.workDir
                    sink = { (e: Entity, m: WriteMode) throws(SluiceError) -> any LoadSink in
                        try? FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)  // else the stage's open names the folder
                        let stage = (scratch as NSString).appendingPathComponent("load-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).stage.db")
                        return try target.beginLoad(table: e.table, schema: e.schema, mode: m, evolve: e.evolve, stagePath: stage)
                    }
                }
                let runner = LoadRunner(plan: plan, sink: sink, stateDir: config.stateDir)
                runner.observer = observer
                return try runner.run()
            }
        }
    }
}
