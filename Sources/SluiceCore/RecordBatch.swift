/// What a row asks the sink to do with its key: insert-or-update, or delete.
public enum RowOp: UInt8, Sendable {
    case upsert = 0
    case delete = 1
}

/// The one currency between readers, transforms and sinks: a few thousand to tens of
/// thousands of rows held column by column, each row tagged with its source line and op.
public struct RecordBatch: Sendable {
    public var fields: [Field]
    public var columns: [Column]
    /// Source position of each row (1-based physical line for text formats, row ordinal otherwise).
    public var lines: [Int64]
    /// Per-row operation; all `.upsert` unless the source carries an op column.
    public var ops: [RowOp]

    /// Name and type of one column in a batch.
    public struct Field: Sendable, Hashable {
        public var name: String
        public var type: ColumnType
        public init(name: String, type: ColumnType) {
            self.name = name
            self.type = type
        }
    }

    public init(fields: [Field], capacity: Int = 0) {
        self.fields = fields
        self.columns = fields.map { Column(type: $0.type, capacity: capacity) }
        self.lines = []
        self.ops = []
        lines.reserveCapacity(capacity)
        ops.reserveCapacity(capacity)
    }

    public var count: Int { lines.count }
    public var isEmpty: Bool { lines.isEmpty }

    public func columnIndex(named name: String) -> Int? { fields.firstIndex { $0.name == name } }

    /// Row `i` as values, for tests and slow paths.
    public func row(_ i: Int) -> [Value] { columns.map { $0.value(at: i) } }

    public mutating func removeAll() {
        for c in columns.indices { columns[c].removeAll() }
        lines.removeAll(keepingCapacity: true)
        ops.removeAll(keepingCapacity: true)
    }

    /// The batch without the rows `drop` holds (sorted or not), in order.
    public func removing(rows drop: Set<Int>) -> RecordBatch {
        keeping(rows: (0..<count).compactMap { drop.contains($0) ? nil : Int32($0) })
    }

    /// The rows at `rows` (in range, in the order given), gathered column by column.
    public func keeping(rows: [Int32]) -> RecordBatch {
        if rows.count == count, rows.elementsEqual(0..<Int32(count)) { return self }
        var out = RecordBatch(fields: fields, capacity: rows.count)
        rows.withUnsafeBufferPointer { idx in
            for c in columns.indices { out.columns[c].append(from: columns[c], gathering: idx) }
        }
        out.lines = rows.map { lines[Int($0)] }
        out.ops = rows.map { ops[Int($0)] }
        return out
    }

    /// Rows holding NaN in a float column, each with why: a value some targets cannot store
    /// (SQLite turns it into NULL unnoticed; MySQL refuses it).
    public func nanRows() -> (rows: Set<Int>, rejects: [SinkReject]) {
        let floats = fields.indices.filter { fields[$0].type == .float64 }
        var rows = Set<Int>()
        var rejects: [SinkReject] = []
        for r in 0..<count {
            // One reject per row, naming its first NaN column.
            guard let c = floats.first(where: { columns[$0].validity[r] && columns[$0].doubles[r].isNaN }) else { continue }
            rows.insert(r)
            rejects.append(SinkReject(line: lines[r], reason: "column '\(fields[c].name)': NaN is not a number this target can store",
                                      values: columns.map { ValueText.render($0, r) }))
        }
        return (rows, rejects)
    }
}
