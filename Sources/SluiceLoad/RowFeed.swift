public import SluiceCore
public import SluiceFormats
import Synchronization

/// Rows a pipeline hands to a load while it is still producing them: the producing task
/// sends batches of rows, the load's reader thread turns them into record batches for the
/// sink. No file lies between the steps and the table. The first rows are held back until
/// ``sampleRows`` have come (or the producer finished), so that a table with no declared
/// columns can be inferred from them, as a file's first rows would be.
public final class RowFeed: Sendable {
    /// How the rows are named in messages (the rows' own places are in their rejects).
    public let name: String
    let sampleRows: Int
    let queue = BoundedQueue<Result<[PipelineRow], SluiceError>>(capacity: 4)
    struct State {
        var fields: [String]?
        var sample: [PipelineRow] = []
        var sampled = false
        var failure: SluiceError?
    }
    let state: Mutex<State>
    let sampleReady = OneShot<Bool>()

    /// `fields`: the rows' fields when known ahead (a pipeline's output), else the first row's.
    public init(name: String, fields: [String]?, sampleRows: Int = SchemaSampler.defaultRows) {
        self.name = name
        self.sampleRows = max(1, sampleRows)
        state = Mutex(State(fields: fields))
    }

    /// A feed of rows already in memory (a staged pipeline's load batch).
    public static func complete(name: String, fields: [String]?, rows: [PipelineRow]) -> RowFeed {
        let feed = RowFeed(name: name, fields: fields, sampleRows: max(1, rows.count))
        feed.state.withLock { s in
            if s.fields == nil { s.fields = rows.first?.fields }
            s.sample = rows
            s.sampled = true
        }
        feed.queue.close()
        feed.sampleReady.set(true)
        return feed
    }

    /// Producer: hands rows on, waiting while the load is behind. False once the load has
    /// stopped reading (it failed or finished): the producer should stop too.
    public func send(_ rows: [PipelineRow]) async -> Bool {
        if rows.isEmpty { return true }
        let held = state.withLock { s -> Bool in
            if s.fields == nil { s.fields = rows[0].fields }
            guard !s.sampled else { return false }
            s.sample += rows
            if s.sample.count >= sampleRows { s.sampled = true }
            return true
        }
        if held {
            if state.withLock({ $0.sampled }) { sampleReady.set(true) }
            return true
        }
        return await queue.send(.success(rows))
    }

    /// Producer: no more rows.
    public func finish() {
        state.withLock { $0.sampled = true }
        sampleReady.set(true)
        queue.close()
    }

    /// Producer: the rows cannot be completed; the load fails with `error` (nothing is written).
    public func fail(_ error: SluiceError) async {
        state.withLock { s in
            s.failure = s.failure ?? error
            s.sampled = true
        }
        sampleReady.set(true)
        await queue.send(.failure(error))
        queue.close()
    }

    /// Waits for the sample; returns whether any row came. Throws the producer's failure
    /// when it failed before the sample was complete.
    public func waitForRows() async throws(SluiceError) -> Bool {
        _ = await sampleReady.value()
        let (rows, failure) = state.withLock { ($0.sample.count, $0.failure) }
        if rows == 0, let failure { throw failure }
        return rows > 0
    }

    /// Consumer: stop taking rows (the producer's next send returns false).
    public func stop() { queue.cancel() }

    /// The fields and the held-back rows (once ``waitForRows()`` returned).
    var sample: (fields: [String], rows: [PipelineRow]) {
        state.withLock { ($0.fields ?? [], $0.sample) }
    }

    /// The sample as CSV text (fields as the header, NULL as an empty field), for inference.
    func sampleCSV() -> [UInt8] {
        let (fields, rows) = sample
        var writer = CSVWriter()
        writer.writeRecord(fields)
        for row in rows {
            for (i, f) in fields.enumerated() {
                if i > 0 { writer.appendDelimiter() }
                if let text = row[f]?.text { writer.writeField(text.utf8) }
            }
            writer.endRecord()
        }
        return writer.output
    }
}

/// Reads a ``RowFeed`` as record batches: each row's fields are coerced to their columns as
/// a CSV field's text would be, and a row that does not fit is rejected with its number.
final class RowBatchReader: BatchReader {
    let feed: RowFeed
    let spec: ReadSpec
    let sourceFields: [String]
    let unusedFields: [String]
    var bytesConsumed: Int64 { 0 }
    var rejectFields: [String] { sourceFields }
    /// Per column, the field it reads; and the op field (matched as a CSV header is: exact, else ignoring case).
    let columnFields: [String]
    let opField: String?
    /// What the per-row work changes, in one struct: a batch is filled through one access to
    /// it (each access to a class's stored property is checked for exclusivity at run time:
    /// about 5% of a text pipeline's time, row by row).
    struct Cursor {
        /// Rows not yet turned into batches (the sample first, then each batch received).
        var pending: [PipelineRow]
        var at = 0
        var line: Int64
        var builder: BatchBuilder
        var finished = false
        /// For the last row shape seen: per column, its slot; the op's slot; per source field, its slot.
        var shape: (fields: [String], columns: [Int?], op: Int?, source: [Int?]) = ([], [], nil, [])
    }
    var cursor: Cursor

    init(feed: RowFeed, spec: ReadSpec) throws(SluiceError) {
        self.feed = feed
        self.spec = spec
        let (fields, rows) = feed.sample
        sourceFields = fields
        var builder = BatchBuilder(schema: spec.schema, capacity: spec.limits.batchRows)
        builder.naiveZone = spec.naiveZone
        cursor = Cursor(pending: rows, line: spec.firstLine - 1, builder: builder)
        let lower = Dictionary(fields.map { ($0.lowercased(), $0) }, uniquingKeysWith: { a, _ in a })
        func find(_ f: String) -> String? { fields.contains(f) ? f : lower[f.lowercased()] }
        var missing: [String] = []
        columnFields = spec.schema.columns.map { c in
            if let f = find(c.sourceField) { return f }
            missing.append(c.name)
            return c.sourceField
        }
        opField = spec.opField.flatMap(find)
        let used = Set(columnFields + (opField.map { [$0] } ?? []))
        if !missing.isEmpty {
            throw SluiceError(.invalidSchema, "columns not found in the rows: \(missing.joined(separator: ", ")); the rows have: \(fields.joined(separator: ", "))",
                              at: SourceLocation(file: feed.name))
        }
        unusedFields = fields.filter { !used.contains($0) }
    }

    func sourceRecord(columnValues: [String?]) -> [String?] {
        sourceFields.map { f in columnFields.firstIndex(of: f).flatMap { $0 < columnValues.count ? columnValues[$0] : nil } }
    }

    func next() throws(SluiceError) -> DecodedBatch? {
        try cursor.next(feed: feed, spec: spec, columnFields: columnFields, opField: opField, sourceFields: sourceFields)
    }
}

extension RowBatchReader.Cursor {
    mutating func next(feed: RowFeed, spec: ReadSpec, columnFields: [String], opField: String?, sourceFields: [String]) throws(SluiceError) -> DecodedBatch? {
        var rejects: [RowReject] = []
        while builder.count < spec.limits.batchRows {
            if at == pending.count {
                if finished { break }
                at = 0
                switch feed.queue.pop() {
                case .success(let rows)?: pending = rows
                case .failure(let e)?: throw e
                case nil: pending = []; finished = true
                }
                continue
            }
            let row = pending[at]
            at += 1
            line += 1
            if row.fields != shape.fields {
                func slot(_ f: String) -> Int? { row.fields.firstIndex(of: f) }
                shape = (row.fields, columnFields.map(slot), opField.flatMap(slot), sourceFields.map(slot))
            }
            var op = RowOp.upsert
            var badOp: String? = nil
            if let k = shape.op, let v = row.slots[k].text {
                if let parsed = Array(v.utf8).withUnsafeBytes({ RowOp.parse($0) }) { op = parsed } else { badOp = SourceLocation.excerpt(v) }
            }
            builder.beginRow(line: line, op: op)
            if let badOp { builder.fail(column: opField, "unknown op '\(badOp)' (use I, U or D)") }
            for (c, k) in shape.columns.enumerated() {
                switch k.map({ row.slots[$0] }) ?? .null {
                case .null: builder.setNull(c)
                // Numbers go in as they are where the column keeps them so; else as their text.
                case .int(let v) where spec.schema.columns[c].type == .int64: builder.setInt(c, v)
                case .double(let v) where spec.schema.columns[c].type == .float64: builder.setDouble(c, v)
                case let v: builder.setText(c, v.text ?? "")
                }
            }
            if var r = builder.endRow() {
                r.fields = shape.source.map { $0.flatMap { row.slots[$0].text } }
                rejects.append(r)
            }
        }
        if builder.count == 0 && rejects.isEmpty { return nil }
        return DecodedBatch(batch: builder.take(), rejects: rejects)
    }
}
