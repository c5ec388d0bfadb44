import ArgumentParser
import Foundation
import SluiceRuntime
import SluiceConfig
import SluiceCore
import SluiceExport
import SluiceQueue
import Crypto


struct ExportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Deliver table rows to an HTTP receiver in batches, each row once.",
        discussion: """
            Rows no batch has carried yet are cut into batches in key order; each batch's file is \
            written to .sluice/exports/ and recorded in the delivery ledger (in the database) before \
            it is sent, so a re-run after a crash sends the same bytes with the same Idempotency-Key. \
            A batch counts as delivered only after a 2xx. 5xx, 408, 429, timeouts and connection \
            errors are retried with backoff (honouring Retry-After); other answers, or running out \
            of attempts, dead-letter the batch: see `sluice export status`, resend with `sluice export retry`.
            
            Examples:
              sluice export --from registros --key id --to https://api.example.com/batch --batch-size 10000
              sluice export nightly            # declared under exports:
              sluice export status
            """,
        subcommands: [Run.self, Status.self, Retry.self],
        defaultSubcommand: Run.self
    )

    /// Runs `body` with the export store of the configured database (SQLite or PostgreSQL).
    static func withStore<T: Sendable>(_ shared: SharedOptions, _ body: @Sendable (any ExportStore) async throws -> T) async throws -> T {
        let config = try shared.loadConfig()
        do {
            return try await Backends.with(control: config.controlDatabase, target: config.targetDatabase, maxConnections: 12, tableSchema: config.targetSchema) { backend in
                try await body(try await Backends.exportStore(backend))
            }
        } catch let e as SluiceError {
            throw fail(e.description)
        }
    }


    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "run", abstract: "Plan the rows not yet sent, then deliver every planned batch.")

        @Argument(help: "An export declared under `exports:` in sluice.yml (options below override it).") var name: String?
        @Option(help: "Table to export, or a Delta table (delta:PATH, a version with @v12).") var from: String?
        @Option(help: "A read-only query to export instead of a table (its columns must include the key).") var query: String?
        @Option(name: .customLong("where"), help: "Only rows matching this SQL condition.") var filter: String?
        @Option(help: "Key column (unique, stable): rows are batched and remembered by it.") var key: String?
        @Flag(help: "Also send rows whose values changed since they were sent (by a hash of each row).") var resendChanged = false
        @Option(help: "Receiver URL (http or https).") var to: String?
        @Option(help: "Rows per batch (default 10000).") var batchSize: Int?
        @Option(help: "File format: csv, ndjson or parquet (default csv).") var format: ExportFormat?
        @Option(help: "Requests in flight at once (default 8).") var concurrency: Int?
        @Option(help: "Multipart field name for the file (default file).") var field: String?
        @Flag(help: "Send the file as the raw request body instead of multipart.") var rawBody = false
        @Option(help: "Extra multipart form field, name=value (repeatable).") var form: [String] = []
        @Option(help: "Extra request header, 'Name: value' (repeatable).") var header: [String] = []
        @Option(help: "Environment variable holding a bearer token for the receiver.") var tokenEnv: String?
        @Flag(help: "Gzip each file.") var gzip = false
        @Option(help: "At most this many requests per second.") var rate: Double?
        @Option(help: "At most this many rows per second.") var rowsPerSecond: Double?
        @Option(help: "Attempts per batch before it is dead-lettered (default 8).") var maxAttempts: Int?
        @Option(help: "Seconds before a request times out (default 60).") var timeout: Double?
        @Option(help: "First retry delay in seconds (doubles each time, with jitter).") var retryBase: Double = 0.5
        @Flag(help: "Only plan (spool and record) batches; send nothing.") var planOnly = false
        @Option(help: "A Delta table (delta:PATH) the delivered keys are appended to after the run, beside the database's ledger.") var ledger: String?
        @OptionGroup var deltaVersion: DeltaVersionOptions
        @Flag(help: "Print the summary as JSON.") var json = false
        @OptionGroup var shared: SharedOptions

        func validate() throws {
            if let b = batchSize, b < 1 { throw ValidationError("--batch-size must be at least 1") }
            if let c = concurrency, c < 1 { throw ValidationError("--concurrency must be at least 1") }
            if let m = maxAttempts, m < 1 { throw ValidationError("--max-attempts must be at least 1") }
        }

        func run() async throws {
            Runtime.bootstrapLogging()
            let config = try shared.loadConfig()
            var described = try spec(config)
            let source = described.source.table ?? ""
            var direct: DeltaExportSource.Direct?
            do {
                // A Delta table is read straight, or through its mirror when the export needs SQL.
                direct = try await DeltaExportSource.direct(&described, config: config)
                if let direct, !json { FileHandle.standardError.write(Data("\(source): \(direct.line)\n".utf8)) }
                if direct == nil, let refresh = try await DeltaExportSource.prepare(&described, config: config), !json {
                    FileHandle.standardError.write(Data("\(source) (\(described.source.table ?? "")): \(refresh.line)\n".utf8))
                }
            } catch let e as SluiceError {
                throw fail(e.description)
            }
            let finish = direct?.finish
            let (planOnly, json, spec) = (planOnly, json, described)
            var ledgerTable = ledger
            if ledgerTable == nil, let name { ledgerTable = try? ExportSpec.settings(name, config: config).ledger }
            if let l = ledgerTable, !l.hasPrefix("delta:") { throw ValidationError("--ledger takes a Delta table: delta:PATH") }
            let table = ledgerTable
            try await ExportCommand.withStore(shared) { store in
                let report: ExportDelivery.Outcome
                do {
                    report = try await ExportDelivery.run(spec, store: store, planOnly: planOnly, progress: isatty(STDERR_FILENO) == 1 && !json ? ProgressLine.export : nil)
                } catch {
                    finish?(false)
                    throw error
                }
                finish?(true)
                if let table {
                    // Under the export's own lock: two runs never publish the same batches.
                    let n = try await store.exclusive(spec.url) { () throws(SluiceError) in
                        try await DeltaLedger.publish(table, url: spec.url, key: spec.source.key, store: store, engine: "sluice/\(BuildInfo.version)")
                    }
                    if !json { FileHandle.standardError.write(Data("ledger \(table): \(n) delivered keys appended\n".utf8)) }
                }
                if json {
                    let enc = JSONEncoder()
                    enc.outputFormatting = [.sortedKeys]
                    print(String(decoding: try enc.encode(report.report), as: UTF8.self))
                } else {
                    print(report.summary)
                }
                if report.dead > 0 { throw ExitCode(3) }
            }
        }

        /// The export these options (over the one declared in `config`) describe.
        func spec(_ config: SluiceConfig) throws -> ExportSpec {
            var d = ExportSettings()
            if let name {
                do { d = try ExportSpec.settings(name, config: config) } catch { throw fail(error.message) }
            }
            // The command line wins over the declaration; --from and --query replace each other.
            (d.from, d.query) = (from ?? (query == nil ? d.from : nil), query ?? (from == nil ? d.query : nil))
            if let f = d.from { d.from = try deltaVersion.apply(to: f) }
            d.filter = filter ?? d.filter
            d.key = key ?? d.key
            d.to = to ?? d.to
            if resendChanged { d.resendChanged = true }
            d.format = format?.rawValue ?? d.format
            d.batchSize = batchSize ?? d.batchSize
            d.concurrency = concurrency ?? d.concurrency
            d.field = field ?? d.field
            if rawBody { d.rawBody = true }
            if gzip { d.gzip = true }
            d.rate = rate ?? d.rate
            d.rowsPerSecond = rowsPerSecond ?? d.rowsPerSecond
            d.timeout = timeout ?? d.timeout
            d.maxAttempts = maxAttempts ?? d.maxAttempts
            d.tokenEnv = tokenEnv ?? d.tokenEnv
            var spec: ExportSpec
            do { spec = try ExportSpec.from(d, config: config) } catch {
                if error.code == .invalidArgument { throw ValidationError(error.message) }
                throw fail(error.message)
            }
            spec.policy.baseDelay = retryBase
            for f in form {
                guard let eq = f.firstIndex(of: "=") else { throw ValidationError("--form takes name=value") }
                spec.formFields.append((String(f[..<eq]), String(f[f.index(after: eq)...])))
            }
            for h in header {
                guard let colon = h.firstIndex(of: ":") else { throw ValidationError("--header takes 'Name: value'") }
                spec.headers.append((String(h[..<colon]).trimmingCharacters(in: .whitespaces), String(h[h.index(after: colon)...]).trimmingCharacters(in: .whitespaces)))
            }
            return spec
        }
    }

    /// What one delivery did, and a line or two saying so.
    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Batches per receiver: delivered, pending, dead-lettered, with what the receiver said.")
        @Option(help: "Only this receiver URL.") var to: String?
        @Flag(help: "Every batch as JSON.") var json = false
        @OptionGroup var shared: SharedOptions

        func run() async throws {
            Runtime.bootstrapLogging()
            let (to, json) = (to, json)
            try await ExportCommand.withStore(shared) { store in
                let batches = try await store.batches(to)
                if json {
                    let enc = JSONEncoder()
                    enc.outputFormatting = [.sortedKeys]
                    print(String(decoding: try enc.encode(batches), as: UTF8.self))
                    return
                }
                for d in DestinationSummary.of(batches) {
                    print("\(d.url): delivered \(d.delivered) batches (\(d.deliveredRows) rows), pending \(d.pending) (\(d.pendingRows) rows), dead \(d.dead) (\(d.deadRows) rows)")
                    for b in d.undelivered {
                        let said = [b.lastStatus.map { "HTTP \($0)" }, b.lastError, b.response.map { "\"\($0.prefix(120))\"" }].compactMap { $0 }.joined(separator: ", ")
                        print("  batch \(b.batch)\t\(b.state.rawValue)\t\(b.rows) rows, keys \(b.firstKey)…\(b.lastKey)\t\(b.attempts) attempts\t\(said)")
                    }
                }
            }
        }
    }

    struct Retry: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Put dead-lettered batches back in the plan (the next `sluice export` sends them).")
        @Option(help: "Only this receiver URL.") var to: String?
        @OptionGroup var shared: SharedOptions

        func run() async throws {
            Runtime.bootstrapLogging()
            let to = to
            try await ExportCommand.withStore(shared) { store in
                print("\(try await store.retryDead(to)) batches back in the plan")
            }
        }
    }
}
