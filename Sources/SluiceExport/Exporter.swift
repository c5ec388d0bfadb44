public import SluiceCore
public import SluiceFormats
public import SluiceQueue
public import SluiceStorage
import Foundation
import Crypto
import AsyncHTTPClient
import NIOCore
import NIOHTTP1
import Metrics

/// Encoding of the files an export sends.
public enum ExportFormat: String, Sendable, CaseIterable, Codable {
    case csv, ndjson, parquet
    var contentType: String {
        switch self {
        case .csv: "text/csv"
        case .ndjson: "application/x-ndjson"
        case .parquet: "application/vnd.apache.parquet"
        }
    }
}

/// What to export where, and how politely.
public struct ExportSpec: Sendable {
    public var source: ExportSource
    /// The receiver's URL; also the ledger's name for the destination.
    public var url: String
    public var format: ExportFormat = .csv
    /// How Parquet batches are written (`parquet:` in sluice.yml).
    public var parquet = ParquetWriteOptions()
    public var batchSize = 10_000
    public var concurrency = 8
    /// Multipart field for the file; nil sends the file as the raw body.
    public var fieldName: String? = "file"
    public var formFields: [(String, String)] = []
    public var headers: [(String, String)] = []
    public var gzip = false
    public var requestsPerSecond: Double?
    public var rowsPerSecond: Double?
    public var timeoutSeconds = 60.0
    public var policy = DeliveryPolicy()
    /// Also plan rows whose values changed since they were planned (never done silently).
    public var resendChanged = false
    /// Folder for spooled batch files (kept until delivered).
    public var spoolDir: String
    /// Where spooled batches are kept when Sluice runs on several hosts (`storage:`), under
    /// `storageFolder`: a batch planned on one host can be sent from any other, and the local
    /// spool is only a cache.
    public var storage: SharedStorage?
    public var storageFolder = "exports"

    /// Rows that live outside the database (a Delta table): the scan to plan from instead of
    /// the store's own (given the store, the destination's id and the page size).
    public var scanner: (@Sendable (any ExportStore, Int64, Int) async throws(SluiceError) -> any ExportScan)?

    public init(source: ExportSource, url: String, spoolDir: String) {
        self.source = source
        self.url = url
        self.spoolDir = spoolDir
    }
}

/// What an export run did.
public struct ExportReport: Sendable, Codable {
    public var planned = 0
    public var plannedRows = 0
    public var delivered = 0
    public var deliveredRows = 0
    public var dead = 0
    public var attempts = 0
    public var seconds = 0.0

    public init() {}

    enum CodingKeys: String, CodingKey {
        case planned, delivered, dead, attempts, seconds
        case plannedRows = "planned_rows", deliveredRows = "delivered_rows"
    }
}

/// Plans batches of rows not yet sent (spooling each file and recording it in the ledger
/// before anything is sent), then delivers every planned batch with bounded concurrency,
/// retries and a rate limit; a batch is marked delivered only after a 2xx.
public final class Exporter: @unchecked Sendable {
    let spec: ExportSpec
    public let store: any ExportStore
    let lock = NSLock()
    var limiter: RateLimiter?
    var rowLimiter: RateLimiter?
    /// Called after each batch is delivered or dead-lettered, with the figures so far
    /// (`planned` counts batches planned by this run up to now).
    public var onProgress: (@Sendable (ExportReport) -> Void)?
    var plannedSoFar = (batches: 0, rows: 0)
    /// Encoding and fsyncing spooled batches run here.
    let spool = BlockingLane("sluice.export.spool")

    public init(spec: ExportSpec, store: any ExportStore) throws(SluiceError) {
        try spec.source.validate()
        guard let u = URL(string: spec.url), let scheme = u.scheme?.lowercased(), scheme == "http" || scheme == "https", u.host != nil else {
            throw SluiceError(.invalidArgument, "the destination must be an http(s) URL, not '\(spec.url)'")
        }
        guard spec.batchSize > 0, spec.concurrency > 0 else { throw SluiceError(.invalidArgument, "batch size and concurrency must be positive") }
        self.spec = spec
        self.store = store
        let now = MonotonicClock.seconds()
        limiter = spec.requestsPerSecond.map { RateLimiter(rate: $0, now: now) }
        rowLimiter = spec.rowsPerSecond.map { RateLimiter(rate: $0, burst: Double(spec.batchSize), now: now) }
    }

    // MARK: Planning

    /// Plans without sending: returns the new batches and rows.
    public func plan() async throws(SluiceError) -> (batches: Int, rows: Int) {
        try await store.exclusive(spec.url) { () throws(SluiceError) in
            try await prepareSpool()
            return try await planBatches(nil)
        }
    }

    /// Creates the spool folder and removes spooled files no undelivered batch refers to:
    /// left by a crash between writing a batch's file and recording it (its rows are simply
    /// planned again).
    func prepareSpool() async throws(SluiceError) {
        do {
            try FileManager.default.createDirectory(atPath: spec.spoolDir, withIntermediateDirectories: true)
        } catch {
            throw SluiceError(.io, "cannot create '\(spec.spoolDir)': \(error.localizedDescription)")
        }
        let keep = Set(try await store.batches(spec.url).filter { $0.state != .delivered }.map(\.file))  // planned and dead-lettered
        for name in (try? FileManager.default.contentsOfDirectory(atPath: spec.spoolDir)) ?? [] where name.hasPrefix("batch-") {
            let path = (spec.spoolDir as NSString).appendingPathComponent(name)
            if !keep.contains(path) && !keep.contains(sharedURL(name) ?? "") { try? FileManager.default.removeItem(atPath: path) }
        }
        if let storage = spec.storage {
            for (url, _) in try await storage.objects(in: spec.storageFolder) where !keep.contains(url) { try await storage.remove(url) }
        }
    }

    /// The storage's URL of the spooled file `name`, when batches are kept there.
    func sharedURL(_ name: String) -> String? {
        spec.storage.map { $0.url + spec.storageFolder + "/" + name }
    }

    /// The local spool's copy of a batch's file (the file itself without `storage:`).
    func localFile(_ batch: ExportBatch) -> String {
        guard spec.storage?.holds(batch.file) == true else { return batch.file }
        return (spec.spoolDir as NSString).appendingPathComponent((batch.file as NSString).lastPathComponent)
    }

    /// A batch's bytes: the local spool's copy, or (planned on another host, or this host's
    /// copy lost) the storage's, checked against the SHA-256 recorded when it was planned.
    func contents(_ batch: ExportBatch) async throws(SluiceError) -> [UInt8] {
        let local = localFile(batch)
        if let data = FileManager.default.contents(atPath: local) {
            let bytes = Array(data)
            if local == batch.file || Self.sha256(bytes) == batch.sha256 { return bytes }
        }
        guard let storage = spec.storage, storage.holds(batch.file) else {
            throw SluiceError(.io, "the spooled file of batch \(batch.batch) is missing", at: SourceLocation(file: batch.file))
        }
        let bytes = try await storage.bytes(batch.file)
        guard Self.sha256(bytes) == batch.sha256 else {
            throw SluiceError(.io, "the kept file of batch \(batch.batch) is not the one planned (SHA-256 differs)", at: SourceLocation(file: batch.file))
        }
        return bytes
    }

    static func sha256(_ bytes: [UInt8]) -> String { SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined() }

    /// Cuts the rows no batch carries yet into batches, in key order. Each batch's file is
    /// encoded, written and fsynced (on the spool's lane, off the cooperative threads) before
    /// the batch and its keys are recorded; the next batch is encoded while one is recorded,
    /// and batches are recorded (and handed on) one after another, in order.
    func planBatches(_ onBatch: (@Sendable (ExportBatch) -> Void)?) async throws(SluiceError) -> (batches: Int, rows: Int) {
        var batches = 0, rows = 0
        var number = try await store.nextBatchNumber(spec.url)
        let destinationID = try await store.destinationID(spec.url)
        let scan: any ExportScan
        if let scanner = spec.scanner {
            scan = try await scanner(store, destinationID, spec.batchSize)
        } else {
            scan = try await store.scan(spec.source, destinationID: destinationID, resendChanged: spec.resendChanged, pageSize: spec.batchSize)
        }
        defer { scan.close() }
        let schema = scan.schema
        // The batch being recorded while the next one is encoded.
        var recording: Task<Result<Void, SluiceError>, Never>?
        func recorded() async throws(SluiceError) {
            guard let r = recording else { return }
            recording = nil
            try await r.value.get()
        }
        do throws(SluiceError) {
            while let page = try await scan.next() {
                let name = "batch-\(number).\(spec.format.rawValue)\(spec.gzip ? ".gz" : "")"
                let local = (spec.spoolDir as NSString).appendingPathComponent(name)
                let sha = try await spool.run { [self] () throws(SluiceError) -> String in
                    let bytes = try encode(page.batch, schema: schema)
                    try Self.writeDurably(bytes, to: local)
                    return Self.sha256(bytes)
                }
                try await recorded()
                // On several hosts the batch is recorded by its copy in the storage.
                let file = try await spec.storage?.keep(local, folder: spec.storageFolder, name: name) ?? local
                let planned = ExportBatch(destination: spec.url, batch: number, rows: page.keys.count, firstKey: page.keys[0].text,
                                          lastKey: page.keys[page.keys.count - 1].text, sha256: sha, file: file, state: .planned, attempts: 0)
                // A batch of consecutive integer keys is one ledger row (its hashes packed in it).
                // Not when resending changed rows: a key planned again may lie in an earlier range.
                let range = spec.resendChanged ? nil : LedgerRanges.consecutive(page.keys)
                recording = Task { [store] () -> Result<Void, SluiceError> in
                    do throws(SluiceError) {
                        if let range {
                            try await store.insert(planned, destinationID: destinationID, range: range, hashes: page.hashes)
                        } else {
                            try await store.insert(planned, destinationID: destinationID, keys: page.keys, hashes: page.hashes)
                        }
                        onBatch?(planned)
                        return .success(())
                    } catch {
                        return .failure(error)
                    }
                }
                batches += 1
                rows += page.keys.count
                number += 1
            }
            try await recorded()
        } catch {
            _ = await recording?.value  // nothing is left recording behind the caller's back
            throw error
        }
        return (batches, rows)
    }

    func encode(_ batch: RecordBatch, schema: TableSchema) throws(SluiceError) -> [UInt8] {
        let sink = MemorySink()
        let nullable = TableSchema(columns: schema.columns.map { var c = $0; c.nullable = true; return c })
        let writer: any BatchWriter
        switch spec.format {
        case .csv: writer = try CSVBatchWriter(sink: sink, schema: nullable)
        case .ndjson: writer = NDJSONBatchWriter(sink: sink, schema: nullable)
        case .parquet: writer = try ParquetWriter(sink: sink, schema: nullable, options: spec.parquet)
        }
        try writer.write(batch)
        try writer.finish()
        guard spec.gzip else { return sink.bytes }
        var out: [UInt8] = []
        try sink.bytes.withBytes { (b) throws(SluiceError) in try Zlib.deflate(b, framing: .gzipOrZlib, into: &out) }
        return out
    }

    /// The batch file, whole or not at all, flushed to disk before the ledger records it.
    static func writeDurably(_ bytes: [UInt8], to path: String) throws(SluiceError) {
        let file = try FileSink(path: path)
        try file.write(bytes)
        try file.commit()
    }

    // MARK: Delivery

    static let client: HTTPClient = {
        var config = HTTPClient.Configuration()
        config.timeout = .init(connect: .seconds(10), read: .seconds(300))
        config.connectionPool.retryConnectionEstablishment = false
        config.redirectConfiguration = .disallow
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: config)
    }()

    /// Delivers every planned batch of this destination; returns the run's figures.
    public func deliver() async throws(SluiceError) -> ExportReport {
        try await store.exclusive(spec.url) { () throws(SluiceError) in try await deliverPending() }
    }

    func deliverPending() async throws(SluiceError) -> ExportReport {
        let pending = try await store.batches(spec.url, state: .planned)
        let (stream, feed) = AsyncStream<ExportBatch>.makeStream()
        for b in pending { feed.yield(b) }
        feed.finish()
        return try await deliver(stream)
    }

    /// Plans and delivers at once: batches left from earlier runs go first, and each new
    /// batch is sent as soon as it is spooled and recorded, while the next is being planned.
    public func run() async throws(SluiceError) -> ExportReport {
        try await store.exclusive(spec.url) { () throws(SluiceError) in try await runAlone() }
    }

    func runAlone() async throws(SluiceError) -> ExportReport {
        try await prepareSpool()
        let pending = try await store.batches(spec.url, state: .planned)
        let (stream, feed) = AsyncStream<ExportBatch>.makeStream()
        for b in pending { feed.yield(b) }
        let planning = Task { [self] () -> Result<(batches: Int, rows: Int), SluiceError> in
            defer { feed.finish() }
            do throws(SluiceError) {
                return .success(try await planBatches { [self] b in
                    lock.withLock { plannedSoFar.batches += 1; plannedSoFar.rows += b.rows }
                    feed.yield(b)
                })
            } catch {
                return .failure(error)
            }
        }
        var report = try await deliver(stream)
        let planned = try await planning.value.get()
        report.planned = planned.batches
        report.plannedRows = planned.rows
        return report
    }

    func deliver(_ stream: AsyncStream<ExportBatch>) async throws(SluiceError) -> ExportReport {
        var report = ExportReport()
        let start = MonotonicClock.seconds()
        do {
            try await withThrowingTaskGroup(of: (ExportBatch, BatchState, Int).self) { group in
                var inFlight = 0
                func collect(_ r: (ExportBatch, BatchState, Int)) {
                    inFlight -= 1
                    report.attempts += r.2
                    if r.1 == .delivered { report.delivered += 1; report.deliveredRows += r.0.rows } else if r.1 == .dead { report.dead += 1 }
                    (report.planned, report.plannedRows) = lock.withLock { plannedSoFar }
                    report.seconds = MonotonicClock.seconds() - start
                    onProgress?(report)
                }
                for await b in stream {
                    if inFlight == spec.concurrency, let r = try await group.next() { collect(r) }
                    inFlight += 1
                    group.addTask { try await self.send(b) }
                }
                while let r = try await group.next() { collect(r) }
            }
        } catch let e as SluiceError {
            throw e
        } catch {
            throw SluiceError(.io, "\(error)")
        }
        report.seconds = MonotonicClock.seconds() - start
        return report
    }

    /// Waits as long as the rate limits ask before the next request of `rows` rows.
    func pace(rows: Int) async {
        let now = MonotonicClock.seconds()
        let wait = lock.withLock { () -> Double in
            var w = 0.0
            if limiter != nil { w = max(w, limiter!.take(1, now: now)) }
            if rowLimiter != nil { w = max(w, rowLimiter!.take(Double(rows), now: now)) }
            return w
        }
        if wait > 0 { try? await Task.sleep(nanoseconds: UInt64(wait * 1e9)) }
    }

    /// Sends one batch until it is delivered or dead-lettered. Returns its end state and attempts.
    func send(_ batch: ExportBatch) async throws(SluiceError) -> (ExportBatch, BatchState, Int) {
        let body = buildBody(try await contents(batch), batch: batch)
        var attempt = 0
        while true {
            attempt += 1
            await pace(rows: batch.rows)
            let t0 = MonotonicClock.seconds()
            let result: AttemptResult
            var excerpt: String? = nil
            do {
                var request = HTTPClientRequest(url: spec.url)
                request.method = .POST
                request.headers.add(name: "Content-Type", value: body.contentType)
                request.headers.add(name: "Idempotency-Key", value: batch.idempotencyKey)
                request.headers.add(name: "User-Agent", value: "sluice/0.1.0")
                for (k, v) in spec.headers { request.headers.add(name: k, value: v) }
                request.body = .bytes(ByteBuffer(bytes: body.bytes))
                let response = try await Self.client.execute(request, timeout: .milliseconds(Int64(spec.timeoutSeconds * 1000)))
                var collected = try await response.body.collect(upTo: 1 << 20)
                excerpt = collected.readString(length: min(collected.readableBytes, 512))
                result = .answered(status: Int(response.status.code), retryAfter: response.headers.first(name: "Retry-After"))
            } catch {
                result = .transportError("\(error)")
            }
            let latency = Int((MonotonicClock.seconds() - t0) * 1000)
            let decision = spec.policy.decide(result, attempt: attempt, random: Double.random(in: 0..<1), now: Date())
            let receiver = URL(string: spec.url).map { "\($0.host ?? "")\($0.port.map { ":\($0)" } ?? "")" } ?? "unknown"
            Metrics.Timer(label: "sluice_export_request_duration_seconds", dimensions: [("receiver", receiver)]).recordMilliseconds(latency)
            let outcome: String
            switch decision {
            case .delivered: outcome = "delivered"
            case .deadLetter: outcome = "dead"
            case .retry: outcome = "retried"
            }
            Counter(label: "sluice_export_attempts_total", dimensions: [("receiver", receiver), ("outcome", outcome)]).increment()
            var status: Int? = nil
            var errorText: String? = nil
            switch result {
            case .answered(let s, _): status = s
            case .transportError(let e): errorText = String(e.prefix(500))
            }
            switch decision {
            case .delivered:
                try await store.record(batch, state: .delivered, status: status, error: nil, response: excerpt, latencyMs: latency)
                try? FileManager.default.removeItem(atPath: localFile(batch))
                if let storage = spec.storage, storage.holds(batch.file) { try? await storage.remove(batch.file) }
                return (batch, .delivered, attempt)
            case .deadLetter(let reason):
                try await store.record(batch, state: .dead, status: status, error: errorText ?? reason, response: excerpt, latencyMs: latency)
                return (batch, .dead, attempt)
            case .retry(let after):
                try await store.record(batch, state: .planned, status: status, error: errorText, response: excerpt, latencyMs: latency)
                try? await Task.sleep(nanoseconds: UInt64(after * 1e9))
            }
        }
    }

    struct Body {
        var bytes: [UInt8]
        var contentType: String
    }

    /// The request body: the file as a multipart field (with the extra form fields), or raw.
    func buildBody(_ file: [UInt8], batch: ExportBatch) -> Body {
        let name = "batch-\(batch.batch).\(spec.format.rawValue)\(spec.gzip ? ".gz" : "")"
        let fileType = spec.gzip ? "application/gzip" : spec.format.contentType
        guard let field = spec.fieldName else { return Body(bytes: file, contentType: fileType) }
        let boundary = "sluice-" + batch.sha256.prefix(32)
        var out: [UInt8] = []
        for (k, v) in spec.formFields {
            out += Array("--\(boundary)\r\nContent-Disposition: form-data; name=\"\(k)\"\r\n\r\n\(v)\r\n".utf8)
        }
        out += Array("--\(boundary)\r\nContent-Disposition: form-data; name=\"\(field)\"; filename=\"\(name)\"\r\nContent-Type: \(fileType)\r\n\r\n".utf8)
        out += file
        out += Array("\r\n--\(boundary)--\r\n".utf8)
        return Body(bytes: out, contentType: "multipart/form-data; boundary=\(boundary)")
    }
}
