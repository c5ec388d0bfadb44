import ArgumentParser
import SluiceConfig
import SluiceCore
import SluiceLoad
import Foundation
import SluiceRuntime

struct LoadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "load",
        abstract: "Load files into an entity's table in one transaction.",
        discussion: """
            Without a declaration in sluice.yml the columns are inferred from the first file \
            and the table is created. In merge mode a row whose op field (default `op`) is D \
            deletes its key, and when a key appears twice the last row wins. Rejected rows \
            go to a CSV beside the load's summary under .sluice/loads/.
            
            Examples:
              sluice load registros.csv --into registros
              sluice load vendas.csv --into vendas --key id --delimiter ';' --decimal , --thousands . --date-format '%d/%m/%Y'
              sluice load s3://landing/day1/ --into orders --dry-run
              sluice load people.csv --into people --key email --database postgres://u@db/warehouse
            """
    )

    @Argument(help: "Files to load (CSV, NDJSON, JSON, Parquet or Avro; .gz accepted for text formats): paths, s3://bucket/key or gs://bucket/key (or a bucket prefix/ for every object under it), gdrive://FOLDER_ID/[name], or http(s) URLs.")
    var files: [String]

    @Option(name: .long, help: "Entity (declared in sluice.yml, or the table name to create), or a Delta table: delta:PATH.")
    var into: String

    @Option(help: "Loading into a new Delta table: its partition columns, comma-separated.")
    var partitionBy: String?

    @Option(help: "Write mode: append, replace or merge (default: the entity's, else merge when there is a key).")
    var mode: WriteMode?

    @Option(help: "Input format: csv, ndjson, json, parquet or avro (default: from the file name or content).")
    var format: SourceFormat?

    @Option(help: "Primary key column(s), comma-separated, when not declared.")
    var key: String?

    @Option(help: "Target table (default: the entity's).")
    var table: String?

    @Option(help: "Abort and roll back when more rows than this are rejected.")
    var maxRejects: Int64?

    @Option(help: "Longest record accepted, in bytes.")
    var maxRecordBytes: Int = ReadLimits().maxRecordBytes

    @Option(help: "Rows per batch.")
    var batchRows: Int = ReadLimits().batchRows

    @Option(help: "Threads parsing each file (default 1): 2 or more cut a big CSV or NDJSON file at line boundaries and parse its pieces at once, for targets that take rows faster than one thread parses them.")
    var parseThreads: Int?

    @Flag(help: "Apply the load and roll it back: exact would-be counts, nothing written (SQLite, PostgreSQL; MySQL: read and check only).")
    var dryRun = false

    @Flag(help: "Create the table when --into names neither a declared entity nor an existing table (otherwise an error, to catch a misspelt name).")
    var create = false

    @Flag(help: "Print the summary as JSON.")
    var json = false

    @Flag(help: "No progress output.")
    var quiet = false

    @OptionGroup var shared: SharedOptions
    @OptionGroup var csv: CSVOptions
    @OptionGroup var deltaVersion: DeltaVersionOptions

    func validate() throws {
        if batchRows < 1 { throw ValidationError("--batch-rows must be at least 1") }
        if maxRecordBytes < 64 { throw ValidationError("--max-record-bytes must be at least 64") }
        if let m = maxRejects, m < 0 { throw ValidationError("--max-rejects cannot be negative") }
        if let p = parseThreads, !(1...64).contains(p) { throw ValidationError("--parse-threads is 1 to 64") }
    }

    func run() async throws {
        let config = try shared.start()
        Interrupt.install()
        do {
            try await loadAll(config)
        } catch {
            guard Interrupt.requested else { throw error }
            let what = config.mappings[into] != nil ? "the entity being loaded was rolled back (those before it are committed)"
                : "rolled back, \(table ?? config.entity(into)?.table ?? into) unchanged"
            FileHandle.standardError.write(Data("interrupted: \(what)\n".utf8))
            throw ExitCode(130)
        }
        if Interrupt.requested { FileHandle.standardError.write(Data("interrupted after the commit: the load above is complete\n".utf8)) }
    }

    func loadAll(_ config: SluiceConfig) async throws {
        let fetched: (paths: [String], scratch: String?)
        let files = try self.files.map { try deltaVersion.apply(to: $0) }
        do {
            fetched = try await Loader.localize(files, config: config) { line in if !quiet { FileHandle.standardError.write(Data((line + "\n").utf8)) } }
        } catch {
            throw fail(error.description)
        }
        defer { if let s = fetched.scratch { try? FileManager.default.removeItem(atPath: s) } }
        if into.hasPrefix("delta:") { return try await loadIntoDelta(fetched.paths, config: config) }
        // Into a mapping: each file is split into one NDJSON part per entity, then each entity
        // is loaded from its parts (one transaction per entity).
        if let mapping = config.mappings[into] {
            let names = files.count == fetched.paths.count ? files : fetched.paths.map { ($0 as NSString).lastPathComponent }
            let split: Loader.MappedParts
            do {
                split = try Loader.split(fetched.paths, names: names, by: mapping, config: config)
            } catch {
                throw fail(error.description + "; nothing was loaded")
            }
            defer { split.remove() }
            do {
                for target in mapping.targets {
                    if !quiet { FileHandle.standardError.write(Data("\(into) → \(target.entity)\n".utf8)) }
                    let p = split.parts[target.entity] ?? ([], .csv)
                    try await loadOne(config: config, entity: target.entity, files: p.files, format: p.format)
                }
            } catch {
                throw fail(error.description)
            }
            return
        }
        do {
            try await loadOne(config: config, entity: into, files: fetched.paths, format: format)
        } catch {
            throw fail(error.description)
        }
    }

    /// Writes the files' rows into a Delta table, one commit per file (replace overwrites the
    /// table with the first file, the others append).
    func loadIntoDelta(_ paths: [String], config: SluiceConfig) async throws {
        let table = String(into.dropFirst("delta:".count))
        let keys = key.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } } ?? []
        let parts = partitionBy.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } } ?? []
        var options = ConvertOptions()
        options.limits = ReadLimits(maxRecordBytes: maxRecordBytes, batchRows: batchRows)
        if csv.isSet { options.csv = try csv.apply(to: CSVDialect()) }
        for (i, path) in paths.enumerated() {
            if mode == .merge || (mode == nil && !keys.isEmpty) {
                do {
                    var r = DeltaMerge.Report()
                    let (fmt, engine) = (format, "sluice/\(BuildInfo.version)")
                    if DeltaRemote.isRemote(into) {
                        r.version = try await DeltaRemote.write(into, config: config, fetchFiles: true) { (local, prepared) in
                            r = try DeltaMerge.run(input: path, inputFormat: fmt, table: local, key: keys, partitionBy: parts, options: options, engine: engine, prepared: prepared)
                        }
                    } else {
                        r = try DeltaMerge.run(input: path, inputFormat: format, table: table, key: keys, partitionBy: parts, options: options, engine: engine)
                    }
                    if json {
                        let enc = JSONEncoder()
                        enc.outputFormatting = [.sortedKeys]
                        print(String(decoding: try enc.encode(r), as: UTF8.self))
                    } else if !quiet {
                        let s = r.stats
                        print("\(path) → \(into) version \(r.version ?? 0): merged by \(keys.joined(separator: ", ")): inserted \(s.inserted), updated \(s.updated), deleted \(s.deleted), skipped \(s.skipped), rejected \(s.rejected); \(r.filesRewritten) of \(r.filesInTable) files rewritten (\(r.filesScanned) read for keys)")
                    }
                } catch let e as SluiceError {
                    throw fail(e.description)
                }
                continue
            }
            let m: DeltaTableWriter.Mode = mode == .replace && i == 0 ? .overwrite : .append
            do {
                var r: ConvertReport
                let (fmt, engine) = (format, "sluice/\(BuildInfo.version)")
                if DeltaRemote.isRemote(into) {
                    nonisolated(unsafe) var local: ConvertReport?
                    let v = try await DeltaRemote.write(into, config: config, fetchFiles: false) { (root, prepared) in
                        local = try Converter.runDelta(input: path, inputFormat: fmt, table: root, mode: m, partitionBy: parts, options: options, engine: engine, prepared: prepared)
                    }
                    r = local!
                    r.version = v
                    r.output = table
                } else {
                    r = try Converter.runDelta(input: path, inputFormat: format, table: table, mode: m, partitionBy: parts, options: options, engine: engine)
                }
                if json {
                    let enc = JSONEncoder()
                    enc.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
                    print(String(decoding: try enc.encode(r), as: UTF8.self))
                } else if !quiet {
                    print("\(path) → \(into) version \(r.version ?? 0): \(m == .overwrite ? "replaced the table with" : "appended") \(r.rows) rows\(r.rejected > 0 ? ", left out \(r.rejected) that do not fit" : "")")
                }
            } catch let e as SluiceError {
                throw fail(e.description)
            }
        }
    }

    /// Loads `files` into one entity and prints the summary; a failure is thrown with its
    /// whole message (not printed), so a pipeline run can record it.
    func loadOne(config: SluiceConfig, entity into: String, files: [String], format: SourceFormat?, afterSQL: [String] = []) async throws(SluiceError) {
        var request = LoadRequest(files: files, entity: into)
        request.afterSQL = afterSQL
        request.mode = mode
        request.format = format
        request.key = key.map { $0.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) } }
        request.table = table
        request.maxRejects = maxRejects
        if let parseThreads { request.parseThreads = parseThreads }
        request.dryRun = dryRun
        request.create = create
        request.limits = ReadLimits(maxRecordBytes: maxRecordBytes, batchRows: batchRows)
        if csv.isSet {
            do { request.csv = try csv.apply(to: config.entity(into)?.csv ?? CSVDialect()) } catch {
                throw error as? SluiceError ?? SluiceError(.invalidArgument, "\(error)")
            }
        }
        try await Self.load(request, config: config, json: json, quiet: quiet)
    }

    /// Runs a load through the ``Loader`` and prints its summary (text or JSON); a failure is
    /// thrown as one message naming its rejects file and saying the table was not changed.
    static func load(_ request: LoadRequest, config: SluiceConfig, json: Bool, quiet: Bool) async throws(SluiceError) {
        _ = try await Loader.load(request, config: config, reporter: .shell(quiet: quiet, json: json))
    }
}

/// The progress display, used by the one load thread that reports to it.
final class DisplayObserver: LoadObserver, @unchecked Sendable {
    let display: ProgressDisplay
    init(_ display: ProgressDisplay) { self.display = display }
    func loadProgress(file: InputFile, index: Int, of count: Int, bytes: Int64, rows: Int64, elapsed: Double) {
        display.loadProgress(file: file, index: index, of: count, bytes: bytes, rows: rows, elapsed: elapsed)
    }
    func loadPhase(_ phase: String) { display.loadPhase(phase) }
}

extension PipelineReporter {
    /// The shell's reporter: lines and the progress display on stderr (none when `quiet`),
    /// each load's summary on stdout (JSON with `json`, also for a load rolled back).
    static func shell(quiet: Bool, json: Bool) -> PipelineReporter {
        PipelineReporter(
            log: { line in if !quiet { FileHandle.standardError.write(Data((line + "\n").utf8)) } },
            loadObserver: { DisplayObserver(ProgressDisplay(enabled: !quiet)) },
            loadFinished: { observer, outcome in
                (observer as? DisplayObserver)?.display.finish()
                switch outcome {
                case .loaded(let report): print(json ? Summary.json(report) : Summary.text(report))
                case .failed(let report?) where json: print(Summary.json(report))
                case .failed: break
                }
            })
    }
}
