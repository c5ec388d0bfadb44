public import SluiceCore
import SluiceFormats
import Foundation
import Synchronization

/// Runs a pipeline's steps over files, streaming: each CSV or JSON file is read a row at a
/// time, transformed, and the kept rows are handed on in batches (to a ``RowFeed`` the
/// load reads). CSV fields arrive as text (cast them), JSON fields with their JSON types.
/// Pipelines run over the queue use the same pieces one stage at a time (`extract`,
/// `afterEnrich`).
public struct PipelineRunner {
    /// What one file (or one batch) gave.
    public struct FileResult: Sendable, Equatable {
        public var read = 0
        public var kept = 0
        public var dropped = 0
        public var rejected = 0
        /// The first rejects, with their record number and reason.
        public var rejects: [String] = []
        public init() {}

        mutating func reject(_ why: String, _ place: String) {
            rejected += 1
            if rejects.count < 100 { rejects.append("\(place): \(why)") }
        }

        /// As a stage job's result: rows in, dropped (as skipped), rejected and the first rejects.
        public func jobStats() -> (stats: LoadStats, rejects: [String]?) {
            var stats = LoadStats()
            stats.read = Int64(read)
            stats.skipped = Int64(dropped)
            stats.rejected = Int64(rejected)
            return (stats, rejects.isEmpty ? nil : Array(rejects.prefix(20)))
        }
    }

    /// The steps between `enrich` steps (the first runs as rows are read).
    var segments: [RowTransformer] = []
    /// `enrich` step k runs, on batches, between segments k and k+1.
    let enrichSteps: [EnrichSpec]
    /// Per `enrich` step: keys looked up, answers from the cache, fetched, failed.
    public private(set) var figures: [Enricher.Figures]
    /// The rows' fields: the pipeline's output fields when known (else each row's own).
    public let header: [String]?
    /// Rows handed to `enrich` at once.
    public var batchRows = 2_000
    /// Where every row a step rejects is written (the counts keep only the first hundred).
    public var rejectLog: StepRejectLog?
    /// The pipeline's `record:`: its files are text, each record one `line` row.
    let textRecords: TextRecords?
    /// A Delta source's `where:`, for skipping files.
    var skip: Expr?

    public var enrichCount: Int { enrichSteps.count }

    public init(pipeline: Pipeline) throws(SluiceError) {
        var current: [PipelineStep] = []
        // A Delta source's `where:` filters its rows first, and skips the files it rules out.
        if pipeline.source.hasPrefix("delta:"), let text = pipeline.sourceFilter {
            do { skip = try ExprParser.parse(text) } catch { throw SluiceError(.invalidConfig, "pipeline \(pipeline.name), where: \(error)") }
            current.append(.filter(skip!))
        }
        var enrich: [EnrichSpec] = []
        for step in pipeline.steps {
            if case .enrich(let spec) = step {
                segments.append(RowTransformer(steps: current))
                enrich.append(spec)
                current = []
            } else {
                current.append(step)
            }
        }
        segments.append(RowTransformer(steps: current))
        enrichSteps = enrich
        textRecords = pipeline.textRecords
        figures = enrich.map { _ in Enricher.Figures() }
        do {
            header = try Pipeline.check((skip.map { [.filter($0)] } ?? []) + pipeline.steps)
        } catch {
            throw SluiceError(.invalidConfig, "pipeline \(pipeline.name), step \(error.step + 1): \(error.message)")
        }
    }

    /// A feed for this pipeline's output rows, named `name` in messages.
    public func feed(name: String) -> RowFeed { RowFeed(name: name, fields: header) }

    /// Reads `file` (named `displayName` in messages) through every step and hands the kept
    /// rows to `feed`. `env` serves the `enrich` steps (HTTP, shared cache and rate limit).
    /// Throws when the feed's load stopped reading.
    public mutating func run(file: String, displayName: String, into feed: RowFeed, env: (any EnrichEnvironment)? = nil) async throws(SluiceError) -> FileResult {
        if !enrichSteps.isEmpty && env == nil { throw SluiceError(.invalidConfig, "an enrich step needs the control plane") }
        var later = FileResult()  // what the steps after the first enrich dropped and rejected
        var kept = 0
        var first = segments[0]
        defer { segments[0] = first }
        // Kept rows need their place only where a later step can still reject them.
        var result = try await Self.cut(file: file, displayName: displayName, steps: &first, batchRows: batchRows, log: rejectLog, records: textRecords,
                                        skip: skip, places: !enrichSteps.isEmpty) { (batch) throws(SluiceError) in
            var rows = batch
            for k in enrichSteps.indices where !rows.isEmpty { rows = try await afterEnrich(step: k, rows, env: env!, result: &later) }
            guard await feed.send(rows.map(\.row)) else { throw SluiceError(.aborted, "the load stopped taking rows", at: SourceLocation(file: displayName)) }
            kept += rows.count
        }
        result.kept = kept
        result.dropped += later.dropped
        result.rejected += later.rejected
        result.rejects += later.rejects.prefix(max(0, 100 - result.rejects.count))
        return result
    }

    /// The extract stage: reads `file`, runs the steps before the first `enrich`, and hands
    /// the kept rows on in batches of `batchRows` (the last may be short, none when empty).
    public mutating func extract(file: String, displayName: String,
                                 emit: ([StageBatch.Item]) async throws(SluiceError) -> Void) async throws(SluiceError) -> FileResult {
        try await Self.cut(file: file, displayName: displayName, steps: &segments[0], batchRows: batchRows, log: rejectLog, records: textRecords, skip: skip, emit: emit)
    }

    /// Reads a file through `steps`, handing the kept rows to `emit` in batches of `batchRows`.
    /// `places`: whether kept rows carry their place (else it is empty). A thread reads the
    /// rows in chunks while `threads` step threads (one when a step remembers rows: `dedupe`)
    /// run the chunks before; outcomes are taken in the file's order, so batches, counts and
    /// rejects are the same on any number of threads.
    static func cut(file: String, displayName: String, steps: inout RowTransformer, batchRows: Int, log: StepRejectLog?, records: TextRecords?,
                    skip: Expr? = nil, places: Bool = true, threads: Int = Self.stepThreads,
                    emit: ([StageBatch.Item]) async throws(SluiceError) -> Void) async throws(SluiceError) -> FileResult {
        var result = FileResult()
        var batch: [StageBatch.Item] = []
        batch.reserveCapacity(batchRows)
        func take(_ outcomes: ArraySlice<RowTransformer.Outcome>, _ place: RowPlace) async throws(SluiceError) {
            for outcome in outcomes {
                switch outcome {
                case .drop: result.dropped += 1
                case .reject(let why):
                    result.reject(why, "\(displayName) \(place)")
                    try log?.write(source: "\(displayName) \(place)", reason: why)
                case .keep(let r):
                    batch.append((r, places ? "\(displayName) \(place)" : ""))
                    result.kept += 1
                    if batch.count >= batchRows {
                        try await emit(batch)
                        batch.removeAll(keepingCapacity: true)
                    }
                }
            }
        }
        // This task takes the outcomes in the file's order while a thread reads the rows in
        // chunks and step threads run the steps over them (each with a transformer of its own;
        // one when a step remembers rows, so that it sees them in order): reading, steps and
        // the load all run at once, and none of the reading or the steps on Swift's
        // cooperative threads.
        let threads = steps.remembersRows ? 1 : max(1, threads)
        let work = BoundedQueue<StepChunk>(capacity: 2 * threads)
        let inOrder = BoundedQueue<StepChunk>(capacity: 4 * threads)
        let template = steps.unplanned
        let workers = (0..<threads).map { _ in
            Task {
                await runOnThread {
                    var t = template
                    while let chunk = work.pop() {
                        var outcomes: [RowTransformer.Outcome] = []
                        var ends: [Int] = []
                        outcomes.reserveCapacity(chunk.count)
                        ends.reserveCapacity(chunk.count)
                        if let text = chunk.text {
                            text.bytes.withUnsafeBufferPointer { all in
                                var from = 0
                                for end in text.ends {
                                    t.run(text: UnsafeBufferPointer(rebasing: all[from..<end]), into: &outcomes)
                                    ends.append(outcomes.count)
                                    from = end
                                }
                            }
                        }
                        for (row, _) in chunk.rows {
                            t.run(row, into: &outcomes)
                            ends.append(outcomes.count)
                        }
                        chunk.done.set(StepChunk.Outcomes(all: outcomes, ends: ends))
                    }
                    return t
                }
            }
        }
        let reader = Task {
            await runOnThread { Self.readChunks(file: file, displayName: displayName, records: records, skip: skip, work: work, inOrder: inOrder) }
        }
        var failure: SluiceError? = nil
        while let chunk = await inOrder.next() {
            let outcomes = await chunk.done.value()
            do {
                var from = 0
                for (i, end) in outcomes.ends.enumerated() {
                    try await take(outcomes.all[from..<end], chunk.place(i))
                    from = end
                }
            } catch {
                failure = error
                inOrder.cancel()
                work.cancel()
                break
            }
        }
        let (read, readFailure) = await reader.value
        result.read = read
        for (k, w) in workers.enumerated() {
            let t = await w.value
            if k == 0 { steps = t }
        }
        if let failure = failure ?? readFailure { throw failure }
        if !batch.isEmpty { try await emit(batch) }
        return result
    }

    /// Threads the steps of a file's rows run on: two where there are two cores.
    static let stepThreads = ProcessInfo.processInfo.activeProcessorCount > 1 ? 2 : 1
    /// Rows per chunk a step thread takes at once.
    static let stepChunk = 1_024
    /// The most text a chunk of text records holds (long records make shorter chunks).
    static let stepChunkBytes = 1 << 22

    /// Rows the steps take at once (rows, or text records as they were read), and their
    /// outcomes once a step thread has run them.
    final class StepChunk: Sendable {
        /// Every row's outcomes one after the other; row i's end at `ends[i]`.
        struct Outcomes: Sendable {
            var all: [RowTransformer.Outcome]
            var ends: [Int]
        }
        let rows: [(PipelineRow, RowPlace)]
        let text: TextChunk?
        let done = OneShot<Outcomes>()
        init(_ rows: [(PipelineRow, RowPlace)]) { (self.rows, text) = (rows, nil) }
        init(_ text: TextChunk) { (rows, self.text) = ([], text) }
        var count: Int { text?.lines.count ?? rows.count }
        func place(_ i: Int) -> RowPlace { text.map { RowPlace(.line, $0.lines[i]) } ?? rows[i].1 }
    }

    /// Text records one after the other in one buffer (record i ends at `ends[i]`), with the
    /// line each starts on: a step thread makes rows of them, or only what its steps need.
    struct TextChunk: Sendable {
        var bytes: [UInt8] = []
        var ends: [Int] = []
        var lines: [Int64] = []
        init() {
            ends.reserveCapacity(stepChunk)
            lines.reserveCapacity(stepChunk)
        }
    }

    /// Reads a file's rows in chunks, each handed to the step threads (`work`) and to the
    /// taker (`inOrder`, in the file's order); closes both at the end. Returns the rows read,
    /// and the error that stopped the reading (none when the taker stopped it).
    static func readChunks(file: String, displayName: String, records: TextRecords?, skip: Expr?,
                           work: BoundedQueue<StepChunk>, inOrder: BoundedQueue<StepChunk>) -> (Int, SluiceError?) {
        var read = 0
        var stopped = false
        var rows: [(PipelineRow, RowPlace)] = []
        rows.reserveCapacity(stepChunk)
        var text = TextChunk()
        func ship() throws(SluiceError) {
            let chunk = text.lines.isEmpty ? StepChunk(rows) : StepChunk(text)
            rows.removeAll(keepingCapacity: true)
            text = TextChunk()
            guard inOrder.push(chunk), work.push(chunk) else {
                stopped = true
                throw SluiceError(.aborted, "the rows are no longer taken")
            }
        }
        defer {
            work.close()
            inOrder.close()
        }
        do {
            if var reader = try textRecords(file: file, displayName: displayName, records: records) {
                // Text records go to the step threads as bytes: making their text (or not)
                // is the steps' work, not this reader's.
                defer { reader.close() }
                while let line = try reader.appendRecord(to: &text.bytes) {
                    text.ends.append(text.bytes.count)
                    text.lines.append(line)
                    read += 1
                    if text.lines.count == stepChunk || text.bytes.count >= stepChunkBytes { try ship() }
                }
            } else {
                try readRows(file: file, displayName: displayName, skip: skip) { (row, place) throws(SluiceError) in
                    read += 1
                    rows.append((row, place))
                    if rows.count == stepChunk { try ship() }
                }
            }
            if !rows.isEmpty || !text.lines.isEmpty { try ship() }
            return (read, nil)
        } catch {
            if stopped { return (read, nil) }
            // The rows before a read error still go through the steps.
            if !rows.isEmpty || !text.lines.isEmpty { try? ship() }
            return (read, error)
        }
    }

    /// `enrich` step `k` over a batch, then the steps up to the next `enrich` (or the end).
    /// Rejected and dropped rows are counted in `result`.
    public mutating func afterEnrich(step k: Int, _ batch: [StageBatch.Item], env: any EnrichEnvironment,
                                     result: inout FileResult) async throws(SluiceError) -> [StageBatch.Item] {
        let (kept, rejects) = try await Enricher(spec: enrichSteps[k], env: env).enrich(batch.map(\.row), figures: &figures[k])
        let rejected = Dictionary(rejects, uniquingKeysWith: { a, _ in a })
        var next: [StageBatch.Item] = []
        var keptAt = 0
        for (i, item) in batch.enumerated() {
            if let why = rejected[i] {
                result.reject(why, item.place)
                try rejectLog?.write(source: item.place, reason: why)
                continue
            }
            for outcome in segments[k + 1].run(kept[keptAt]) {
                switch outcome {
                case .keep(let r): next.append((r, item.place))
                case .drop: result.dropped += 1
                case .reject(let why):
                    result.reject(why, item.place)
                    try rejectLog?.write(source: item.place, reason: why)
                }
            }
            keptAt += 1
        }
        return next
    }

    /// The name that tells a file's format: an upload's path is a generated name; its display
    /// name is the client's.
    static func named(_ file: String, _ displayName: String) -> String {
        [displayName, file].first { format(named: $0) != nil } ?? file
    }

    /// The format a name tells (a `.gz` name by the name inside).
    static func format(named: String) -> SourceFormat? {
        SourceFormat.detect(fromName: named.hasSuffix(".gz") ? String(named.dropLast(3)) : named)
    }

    /// A file's bytes as UTF-8 (gunzipped, or from UTF-16).
    static func open(_ file: String, named: String) throws(SluiceError) -> any ByteChunkReader {
        if named.hasSuffix(".gz") { return try GzipChunkReader(try FileChunkReader(path: file)) }
        return try UTF16ChunkReader.utf8(try FileChunkReader(path: file)) { () throws(SluiceError) in try FileChunkReader(path: file) }
    }

    /// The records of `file` when it is read as text (a pipeline's `record:`, or a `.txt`
    /// that shows no delimiter); nil for other files.
    static func textRecords(file: String, displayName: String, records: TextRecords?) throws(SluiceError) -> TextRecordReader? {
        let named = Self.named(file, displayName)
        if file.hasPrefix("delta:") || DeltaLocation.isTable(file) || SourceFormat.detect(fromName: named)?.isBinary == true { return nil }
        let format = Self.format(named: named) ?? .csv
        guard records != nil || format == .text || (format == .csv && Self.undelimitedText(file, named: named)) else { return nil }
        return TextRecordReader(source: try Self.open(file, named: named), records: records ?? .line, fileName: displayName)
    }

    /// Whether `file` (named `named`) is text records by ``InputFile/isTextRecords(head:name:)``.
    static func undelimitedText(_ file: String, named: String) -> Bool {
        guard named.lowercased().hasSuffix(".txt"), var r = try? FileChunkReader(path: file) else { return false }
        let head = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 1)
        defer { head.deallocate() }
        let n = (try? r.read(into: head)) ?? 0
        return InputFile.isTextRecords(head: head[0..<n], name: named)
    }

    /// Calls `body` with each record of a CSV, JSON or typed file as a row, and where it is
    /// (text records go to the steps as bytes: ``readChunks``).
    static func readRows(file: String, displayName: String, skip: Expr? = nil,
                         _ body: (PipelineRow, RowPlace) throws(SluiceError) -> Void) throws(SluiceError) {
        let named = Self.named(file, displayName)
        if file.hasPrefix("delta:") || DeltaLocation.isTable(file) || SourceFormat.detect(fromName: named)?.isBinary == true {
            return try readTyped(file: file, displayName: displayName, skip: skip, body)
        }
        let reader = try Self.open(file, named: named)
        let format = Self.format(named: named) ?? .csv
        switch format {
        case .csv:
            let csv = CSVDecoder(source: reader, fileName: displayName)
            var names: [String]? = nil
            while true {
                switch try csv.next() {
                case .end: return
                case .tooLong: throw SluiceError(.recordTooLong, "a record is too long", at: SourceLocation(file: displayName, line: csv.line))
                case .record:
                    let fields = csv.fieldStrings()
                    guard let header = names else { names = fields.map { $0 ?? "" }; continue }
                    let slots = header.indices.map { i in i < fields.count ? fields[i].map(EValue.text) ?? .null : .null }
                    try body(PipelineRow(fields: header, slots: slots), RowPlace(.line, csv.line))
                }
            }
        case .ndjson, .json:
            let framer = JSONFramer(source: reader, fileName: displayName)
            var number: Int64 = 0
            while true {
                switch try framer.next() {
                case .end: return
                case .tooLong: throw SluiceError(.recordTooLong, "a record is too long", at: SourceLocation(file: displayName, line: framer.line))
                case .record:
                    number += 1
                    let value: JSONValue
                    do { value = try JSONParser.parse(framer.record) } catch {
                        throw SluiceError(.malformedFile, error.description, at: SourceLocation(file: displayName, line: framer.line))
                    }
                    guard case .object(let members) = value else {
                        throw SluiceError(.invalidInput, "a record is not a JSON object", at: SourceLocation(file: displayName, line: framer.line))
                    }
                    var row = PipelineRow(fields: members.map(\.key), slots: members.map { Self.value($0.value) })
                    if Set(row.fields).count != row.fields.count {
                        // A key written twice: its last value wins (as in every JSON read here), in its first place.
                        row = PipelineRow(fields: [], slots: [])
                        for m in members { row[m.key] = Self.value(m.value) }
                    }
                    try body(row, RowPlace(.record, number))
                }
            }
        default:
            throw SluiceError(.unsupported, "pipelines read CSV and JSON files, not \(format.rawValue)", at: SourceLocation(file: displayName))
        }
    }

    /// Rows of a file typed by its own schema (Parquet, Avro, a Delta table): numbers and
    /// booleans keep their types, other values go to the steps as text.
    static func readTyped(file: String, displayName: String, skip: Expr? = nil, _ body: (PipelineRow, RowPlace) throws(SluiceError) -> Void) throws(SluiceError) {
        let input = try InputFile.inspect(path: file, format: nil)
        let columns = try input.inferColumns(dialect: CSVDialect(), rows: 0, exclude: [], limits: ReadLimits())
        // Nothing is refused here: the steps and the load judge the values.
        let schema = TableSchema(columns: columns.map { ColumnSchema(name: $0.name, type: $0.type, nullable: true) })
        let reader = try input.reader(spec: ReadSpec(schema: schema, fileName: displayName), dialect: CSVDialect())
        (reader as? DeltaBatchReader)?.skip = skip
        let names = schema.columns.map(\.name)
        // A Delta change read with deletes: each row says whether it deletes (`op`: D), as a
        // change file would, for a merging load to apply.
        let ops = (reader as? DeltaBatchReader)?.snapshot.changes != nil && !names.contains("op")
        let fields = ops ? names + ["op"] : names
        while let decoded = try reader.next() {
            if let bad = decoded.rejects.first { throw SluiceError(.invalidInput, bad.message, at: SourceLocation(file: displayName, line: bad.line)) }
            let b = decoded.batch
            for i in 0..<b.count {
                var slots = names.indices.map { evalue(b.columns[$0], i) }
                if ops { slots.append(b.ops[i] == .delete ? .text("D") : .null) }
                try body(PipelineRow(fields: fields, slots: slots), RowPlace(.row, b.lines[i]))
            }
        }
    }

    static func evalue(_ col: Column, _ i: Int) -> EValue {
        if col.isNull(i) { return .null }
        switch col.type {
        case .int64: return .int(col.ints[i])
        case .float64: return .double(col.doubles[i])
        case .bool: return .bool(col.ints[i] != 0)
        default: return ValueText.render(col, i).map(EValue.text) ?? .null
        }
    }

    /// A JSON value as an expression value: nested arrays and objects as their JSON text.
    static func value(_ v: JSONValue) -> EValue { RowTransformer.value(v) }
}

/// Where a row came from in its file: a line (text, CSV), a record (JSON) or a row (typed
/// files), written out only when a message or a later stage needs it.
struct RowPlace: CustomStringConvertible {
    enum Kind: String { case line, record, row }
    let kind: Kind
    let number: Int64
    init(_ kind: Kind, _ number: Int64) {
        self.kind = kind
        self.number = number
    }
    var description: String { "\(kind.rawValue) \(number)" }
}

/// A pipeline run's rejects file: every row a step refused, where it came from (file and
/// line or record) and why (the step and the reason). Created on the first reject.
public final class StepRejectLog: Sendable {
    let writer: Mutex<RejectsWriter>
    public let path: String

    public init(path: String) {
        self.path = path
        writer = Mutex(RejectsWriter(path: path, header: ["_source"], withLine: false))
    }

    func write(source: String, reason: String) throws(SluiceError) {
        try writer.withLock { (w) throws(SluiceError) in try w.write(RowReject(line: 0, reason: reason, fields: [source])) }
    }

    /// Rows written so far.
    public var count: Int64 { writer.withLock { $0.count } }

    public func close() throws(SluiceError) { try writer.withLock { (w) throws(SluiceError) in try w.close() } }

    /// Where run `run` of `pipeline` gathers the rows its steps rejected.
    public static func runFile(_ pipeline: String, run: Int64, stateDir: String) -> String {
        let safe = String(pipeline.map { $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" ? $0 : "_" }.prefix(40))
        return (stateDir as NSString).appendingPathComponent("runs/\(safe)-\(run)/rejects.csv")
    }

    /// Where one stage job of a run writes its part (rewritten whole when the job is retried,
    /// so a batch's rejects are kept once).
    public static func jobPart(_ pipeline: String, run: Int64, job: Int64, stateDir: String) -> String {
        ((runFile(pipeline, run: run, stateDir: stateDir) as NSString).deletingLastPathComponent as NSString)
            .appendingPathComponent("parts/job-\(job).csv")
    }

    /// Appends the stage jobs' parts, in order, to the run's file (one header) and removes
    /// them. Returns the run's file, or nil when nothing was rejected. A part on another
    /// host's disk is named in the file instead of lost silently.
    public static func merge(_ parts: [String], into file: String) throws(SluiceError) -> String? {
        guard !parts.isEmpty else { return nil }
        func record(_ fields: [String]) -> Data {
            var w = CSVWriter()
            w.writeRecord(fields)
            return Data(w.output)
        }
        let temporary = file + ".partial"
        do {
            try FileManager.default.createDirectory(atPath: (file as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            guard FileManager.default.createFile(atPath: temporary, contents: record(["_source", "_error"])),
                  let out = FileHandle(forWritingAtPath: temporary) else { throw SluiceError(.io, "cannot create '\(temporary)'") }
            defer { try? out.close() }
            try out.seekToEnd()
            for part in parts {
                guard let input = FileHandle(forReadingAtPath: part) else {
                    try out.write(contentsOf: record([part, "this stage job's rejects file is not on this host"]))
                    continue
                }
                defer { try? input.close() }
                // Each part starts with the same header line: copy the rows after it.
                var header = true
                while let chunk = try input.read(upToCount: 1 << 20), !chunk.isEmpty {
                    var rows = chunk[...]
                    if header, let nl = rows.firstIndex(of: UInt8(ascii: "\n")) {
                        rows = rows[(nl + 1)...]
                        header = false
                    } else if header { continue }
                    try out.write(contentsOf: rows)
                }
            }
            try out.synchronize()
            guard rename(temporary, file) == 0 else { throw SluiceError(.io, "cannot rename '\(temporary)' to '\(file)'") }
        } catch let e as SluiceError {
            throw e
        } catch {
            throw SluiceError(.io, "cannot write rejects file '\(file)': \(error.localizedDescription)")
        }
        for part in parts { try? FileManager.default.removeItem(atPath: part) }
        try? FileManager.default.removeItem(atPath: (parts[0] as NSString).deletingLastPathComponent)
        return file
    }
}
