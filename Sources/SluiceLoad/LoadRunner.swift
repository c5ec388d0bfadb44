public import SluiceCore
import SluiceFormats
import Foundation
import Synchronization

/// Per-file figures of a load.
public struct FileReport: Sendable, Codable, Hashable {
    public var path: String
    public var bytes: Int64
    public var read: Int64
    public var rejected: Int64
    /// CSV of this file's rejected rows (source fields, `_line`, `_error`), if any.
    public var rejectsFile: String?

    enum CodingKeys: String, CodingKey {
        case path, bytes, read, rejected
        case rejectsFile = "rejects_file"
    }
}

/// What a load did: exact counts, time, and where its summary and rejects are.
public struct LoadReport: Sendable, Codable {
    public var loadId: String
    public var entity: String
    public var table: String
    public var mode: WriteMode
    public var dryRun: Bool
    /// A dry run whose counts are exact: the load was applied and rolled back.
    public var rehearsed = false
    /// Whether the columns were inferred from the file.
    public var inferred: Bool
    public var files: [FileReport] = []
    public var stats = LoadStats()
    public var seconds: Double = 0
    /// Of `seconds`, the time the target took to apply and commit (the rest read and staged rows).
    public var commitSeconds: Double = 0
    /// Source fields that no column reads.
    public var unusedFields: [String] = []
    public var summaryPath: String?
    /// Set when the load failed (and was rolled back).
    public var error: String?

    enum CodingKeys: String, CodingKey {
        case loadId = "load_id", entity, table, mode
        case dryRun = "dry_run", rehearsed, inferred, files, stats, seconds
        case unusedFields = "unused_fields", summaryPath = "summary", error
    }
}

/// A failed load: the error, and the report of what was read before it (nothing was written).
public struct LoadFailure: Error, Sendable, CustomStringConvertible {
    public var error: SluiceError
    public var report: LoadReport
    public var description: String { error.description }
}

/// Receives progress while a load runs (the CLI draws a bar or logs lines).
public protocol LoadObserver: AnyObject {
    /// Called after each batch: the file being read, bytes of it consumed, rows so far.
    func loadProgress(file: InputFile, index: Int, of count: Int, bytes: Int64, rows: Int64, elapsed: Double)
    /// Called when the load enters a phase that may take a while (`committing`).
    func loadPhase(_ phase: String)
}

/// Runs a ``LoadPlan``: for each file a reader thread decodes batches into a small
/// bounded queue while this task writes them to the sink, so decoding and writing
/// overlap and memory stays bounded. Everything commits in one transaction at the end.
public final class LoadRunner {
    /// Opens the sink a load writes to, for its entity and mode.
    public typealias SinkFactory = (Entity, WriteMode) async throws(SluiceError) -> any LoadSink

    let plan: LoadPlan
    let makeSink: SinkFactory?
    let stateDir: String
    public weak var observer: (any LoadObserver)?
    /// Checked between batches; returning false aborts the load (nothing is written).
    public var shouldContinue: (@Sendable () -> Bool)?
    /// Fixed load id (workers name loads after their job); generated when nil.
    public var loadId: String?

    /// A load with its own sink (nil: a dry run that writes nothing).
    public init(plan: LoadPlan, sink: SinkFactory?, stateDir: String) {
        self.plan = plan
        self.makeSink = sink
        self.stateDir = stateDir
    }

    static func makeLoadId(entity: String) -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
        let safe = String(entity.map { $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" ? $0 : "_" }.prefix(40))
        return "\(f.string(from: Date()))-\(safe)-\(String(UInt16.random(in: 0...UInt16.max), radix: 16))"
    }

    public func run() async throws(LoadFailure) -> LoadReport {
        let clock = ContinuousClock()
        let started = clock.now
        let entity = plan.entity
        var report = LoadReport(loadId: loadId ?? Self.makeLoadId(entity: entity.name), entity: entity.name, table: entity.table,
                                mode: plan.mode, dryRun: plan.request.dryRun, inferred: plan.inferred)
        let dir = (stateDir as NSString).appendingPathComponent("loads/\(report.loadId)")
        var sink: (any LoadSink)? = nil
        var writers: [FileRejects] = []
        defer { for w in writers { try? w.writer.close() } }  // closed explicitly on success
        do throws(SluiceError) {
            if let makeSink {
                sink = try await makeSink(entity, plan.mode)
            }
            for (i, file) in plan.files.enumerated() {
                writers.append(try await loadFile(file, index: i, sink: sink, dir: dir, report: &report, started: started, clock: clock))
            }
            if let sink {
                observer?.loadPhase("committing")
                let budget = plan.request.maxRejects.map { $0 - report.stats.rejected }
                let context = CommitContext(stats: report.stats, rejectsFiles: report.files.compactMap(\.rejectsFile), rejectBudget: budget,
                                            afterSQL: plan.request.afterSQL, rehearsal: plan.request.dryRun)
                let committing = clock.now
                let counts = try await sink.commit(context)
                report.commitSeconds = (clock.now - committing).seconds
                // Rows the target refused while applying the load go to their file's rejects.
                for r in counts.rejects {
                    let index = Int(r.line >> Self.fileShift)
                    guard index < writers.count else { continue }
                    let w = writers[index]
                    try w.writer.write(RowReject(line: r.line & Self.lineMask, reason: r.reason,
                                                 fields: r.values.isEmpty ? [] : w.reader.sourceRecord(columnValues: r.values)))
                    report.files[index].rejected += 1
                }
                for (i, w) in writers.enumerated() {
                    try w.writer.close()
                    if w.writer.count > 0 { report.files[i].rejectsFile = w.writer.path }
                }
                report.stats = context.settled(counts)
                report.rehearsed = plan.request.dryRun
            }
        } catch {
            await sink?.rollback()
            report.seconds = (clock.now - started).seconds
            report.error = error.description
            report.stats.inserted = 0
            report.stats.updated = 0
            report.stats.deleted = 0
            report.stats.skipped = 0
            report.summaryPath = writeSummary(report, dir: dir)
            throw LoadFailure(error: error, report: report)
        }
        report.seconds = (clock.now - started).seconds
        report.summaryPath = writeSummary(report, dir: dir)
        return report
    }

    /// Source lines reach the sink tagged with their file's index in the high bits, so that
    /// "later row" is well defined across several files and a sink's rejects map back.
    static let fileShift: Int64 = 40
    static let lineMask: Int64 = (1 << 40) - 1

    /// A file's rejects file, kept open until the commit (which may refuse more rows).
    struct FileRejects {
        var writer: RejectsWriter
        var reader: any BatchReader
    }

    /// Decodes one file on a reader thread and writes its batches here. The file's figures
    /// land in `report` even when it fails (so a failed load still names its rejects).
    func loadFile(_ file: InputFile, index: Int, sink: (any LoadSink)?, dir: String, report: inout LoadReport,
                  started: ContinuousClock.Instant, clock: ContinuousClock) async throws(SluiceError) -> FileRejects {
        let progress = LoadProgress()
        let chunk = plan.request.chunk
        var spec = ReadSpec(schema: plan.entity.schema, opField: plan.mode == .merge ? plan.entity.opColumn : nil,
                            limits: plan.request.limits, fileName: file.path, firstLine: chunk?.firstLine ?? 1, knownHeader: chunk?.header)
        spec.naiveZone = plan.naiveZone
        spec.textRecords = plan.entity.textRecords
        let (ahead, reader) = try ReadAhead.of(file, spec: spec, dialect: plan.entity.csv, parseThreads: plan.request.parseThreads,
                                               progress: progress, range: chunk.map { $0.start..<$0.end })
        let base = (file.path as NSString).lastPathComponent
        let rejects = RejectsWriter(path: (dir as NSString).appendingPathComponent("\(index + 1)-\(base).rejects.csv"), header: reader.rejectFields)
        var out = FileReport(path: file.path, bytes: 0, read: 0, rejected: 0, rejectsFile: nil)

        var failure: SluiceError? = nil
        do throws(SluiceError) {
            while let item = await ahead.queue.next() {
                if let shouldContinue, !shouldContinue() {
                    throw SluiceError(.aborted, "the load was stopped", at: SourceLocation(file: file.path))
                }
                let decoded = try item.get()
                out.read += Int64(decoded.rowsRead)
                report.stats.read += Int64(decoded.rowsRead)
                for r in decoded.rejects { try rejects.write(r) }
                var rejected = Int64(decoded.rejects.count)
                if let sink {
                    var batch = decoded.batch
                    if index > 0 {
                        let tag = Int64(index) << Self.fileShift
                        for i in batch.lines.indices { batch.lines[i] |= tag }
                    }
                    for s in try await sink.write(batch) {
                        try rejects.write(RowReject(line: s.line & Self.lineMask, reason: s.reason, fields: reader.sourceRecord(columnValues: s.values)))
                        rejected += 1
                    }
                }
                out.rejected += rejected
                report.stats.rejected += rejected
                if let max = plan.request.maxRejects, report.stats.rejected > max {
                    try rejects.flush()
                    throw SluiceError(.tooManyRejects, "more than \(max) rows rejected (see \(rejects.path)); nothing was written",
                                      at: SourceLocation(file: file.path))
                }
                observer?.loadProgress(file: file, index: index, of: plan.files.count, bytes: progress.bytes,
                                       rows: report.stats.read, elapsed: (clock.now - started).seconds)
            }
        } catch {
            failure = error
        }
        // The reader thread stops at its next batch; its figures are final once it has.
        await ahead.stop()
        try? rejects.flush()  // a failure here is reported when the file is closed
        out.bytes = progress.bytes
        if rejects.count > 0 { out.rejectsFile = rejects.path }
        report.files.append(out)
        for u in reader.unusedFields where !report.unusedFields.contains(u) { report.unusedFields.append(u) }
        if let failure { throw failure }
        try rejects.flush()
        report.stats.bytes += progress.bytes
        return FileRejects(writer: rejects, reader: reader)
    }

    func writeSummary(_ report: LoadReport, dir: String) -> String? {
        let path = (dir as NSString).appendingPathComponent("summary.json")
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        var r = report
        r.summaryPath = path
        guard let data = try? enc.encode(r),
              (try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)) != nil,
              FileManager.default.createFile(atPath: path, contents: data) else { return nil }
        return path
    }
}

/// A reader's batches decoded on a thread of its own, a few ahead of whoever takes them (a
/// load's sink, a conversion's writer), so that parsing and writing share the two cores.
final class ReadAhead: Sendable {
    let queue = BoundedQueue<Result<DecodedBatch, SluiceError>>(capacity: 3)
    let finished = OneShot<Bool>()
    /// The next chunk a parsing thread takes (chunked reading only).
    let nextChunk = Mutex(0)

    init(_ reader: any BatchReader) {
        let (queue, finished, box) = (queue, finished, UncheckedBox(reader))
        Self.start {
            defer { queue.close(); finished.set(true) }
            do throws(SluiceError) {
                while let b = try box.value.next() { if !queue.push(.success(b)) { return } }
            } catch {
                queue.push(.failure(error))
            }
        }
    }

    /// One file's `chunks` (line-aligned, ``ChunkPlanner``) parsed by `threads` threads at
    /// once, each thread taking the next chunk not yet taken; a forwarding thread hands the
    /// batches on chunk after chunk, so they come in the file's order (the last row per key
    /// still wins). At most `threads + 1` chunks are taken and not yet handed on, each
    /// holding two batches at most: memory stays a few batches per thread, not the file.
    init(chunks: [FileChunk], threads: Int, open: @escaping @Sendable (FileChunk) throws(SluiceError) -> any BatchReader) {
        let threads = max(1, threads)
        let parts = chunks.map { _ in BoundedQueue<Result<DecodedBatch, SluiceError>>(capacity: 2) }
        let parsing = DispatchGroup()
        // A chunk is taken only with a permit, given back when the forwarder is done with one:
        // without it a thread whose chunks fit their queues would parse on to the file's end.
        // (Made at 0 and signalled: libdispatch traps when a semaphore goes with fewer
        // permits than it was made with, as a stopped read leaves it.)
        let window = DispatchSemaphore(value: 0)
        for _ in 0...threads { window.signal() }
        for _ in 0..<threads {
            parsing.enter()
            Self.start { [self] in
                defer { parsing.leave() }
                while true {
                    window.wait()
                    let k = nextChunk.withLock { n in
                        defer { n += 1 }
                        return n
                    }
                    guard k < chunks.count else { return }
                    defer { parts[k].close() }
                    do throws(SluiceError) {
                        let reader = try open(chunks[k])
                        while let b = try reader.next() { if !parts[k].push(.success(b)) { return } }
                    } catch {
                        parts[k].push(.failure(error))
                        return
                    }
                }
            }
        }
        let (queue, finished) = (queue, finished)
        Self.start { [self] in
            defer {
                queue.close()
                // A stop or a failure ends the parsing threads: at their next batch, or at
                // their next permit, where they find no chunk left to take.
                nextChunk.withLock { $0 = chunks.count }
                for p in parts { p.cancel() }
                for _ in 0..<threads { window.signal() }
                parsing.wait()
                finished.set(true)
            }
            for part in parts {
                while let item = part.pop() {
                    guard queue.push(item) else { return }
                    if case .failure = item { return }
                }
                window.signal()
            }
        }
    }

    /// A reader for `file` and its batches read ahead; with `parseThreads` over 1, a CSV or
    /// NDJSON file big enough to cut is parsed in chunks of ``chunkBytes`` that many at once
    /// instead (the reader returned then only names the fields, and counts no bytes).
    static func of(_ file: InputFile, spec: ReadSpec, dialect: CSVDialect, parseThreads: Int, progress: LoadProgress? = nil,
                   range: Range<Int64>? = nil, chunkBytes: Int64 = chunkBytes) throws(SluiceError) -> (ReadAhead, any BatchReader) {
        guard parseThreads > 1, range == nil, let chunks = try ChunkPlanner.split(file, dialect: dialect, chunkBytes: chunkBytes),
              chunks.count > 1 else {
            let reader = try file.reader(spec: spec, dialect: dialect, progress: progress, range: range)
            return (ReadAhead(reader), reader)
        }
        progress?.add(bytes: chunks[0].start)  // the header line, before the first chunk
        let ahead = ReadAhead(chunks: chunks, threads: parseThreads) { (chunk) throws(SluiceError) -> any BatchReader in
            var s = spec
            s.firstLine = chunk.firstLine
            s.knownHeader = chunk.header
            return try file.reader(spec: s, dialect: dialect, progress: progress, range: chunk.start..<chunk.end)
        }
        return (ahead, try file.reader(spec: spec, dialect: dialect))
    }

    /// The bytes a parsing thread takes at once: small enough that the last chunks even the
    /// threads out, big enough that opening a reader per chunk costs nothing.
    static let chunkBytes: Int64 = 4 << 20

    static func start(_ body: @escaping @Sendable () -> Void) {
        let thread = Thread(block: body)
        thread.stackSize = 4 << 20
        thread.start()
    }

    /// Stops the reader at its next batch and waits until it has (its figures are then final).
    func stop() async {
        queue.cancel()
        _ = await finished.value()
    }
}

/// Hands a non-Sendable value to the one thread that uses it next.
struct UncheckedBox<T>: @unchecked Sendable {
    let value: T
    init(_ v: T) { value = v }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}

/// Runs blocking work on its own thread and resumes when it is done, so that the
/// cooperative thread pool never waits on file, SQLite or bridged PostgreSQL work.
public func runOnThread<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { cont in
        let t = Thread { cont.resume(returning: body()) }
        t.stackSize = 4 << 20
        t.start()
    }
}
