extension RowOp {
    /// Reads an op column value: empty/NULL, `I`, `U`, `C`, `insert`, `update`, `upsert`
    /// mean upsert; `D` and `delete` mean delete (any case). Anything else is nil.
    public static func parse(_ raw: UnsafeRawBufferPointer) -> RowOp? {
        let b = Coercion.trimmed(raw)
        if b.isEmpty { return .upsert }
        let word = String(decoding: b, as: UTF8.self).lowercased()
        switch word {
        case "i", "u", "c", "insert", "update", "upsert", "create": return .upsert
        case "d", "delete", "del", "remove": return .delete
        default: return nil
        }
    }
}

/// Builds a ``RecordBatch`` row by row from text or JSON fields, coercing each field to
/// its column's type. A field that does not fit turns the row into a ``RowReject``
/// naming the column and value; the batch never holds half a row.
public struct BatchBuilder: Sendable {
    public let schema: TableSchema
    public private(set) var batch: RecordBatch
    let isKey: [Bool]
    var line: Int64 = 0
    var op: RowOp = .upsert
    var failure: (column: String?, reason: String)?
    var scratch: [UInt8] = []
    /// Set for text whose numbers use another decimal or a thousands separator.
    public var numbers: CSVDialect?
    /// Set for text whose dates or timestamps are written another way (`%d/%m/%Y`).
    public var dates: CSVDialect?
    /// The zone of timestamps written without an offset going into timestamptz columns
    /// (nil: UTC).
    public var naiveZone: NaiveTimeZone?
    var numberText: [UInt8] = []

    public init(schema: TableSchema, capacity: Int) {
        self.schema = schema
        self.batch = RecordBatch(fields: schema.fields, capacity: capacity)
        let keys = Set(schema.primaryKey)
        self.isKey = schema.columns.map { keys.contains($0.name) }
    }

    public var count: Int { batch.count }

    /// Returns the rows built so far and starts an empty batch with the same columns.
    public mutating func take() -> RecordBatch {
        let out = batch
        batch = RecordBatch(fields: schema.fields, capacity: out.count)
        return out
    }

    public mutating func beginRow(line: Int64, op: RowOp = .upsert) {
        self.line = line
        self.op = op
        if failure != nil { failure = nil }  // assigning destroys the old value, even nil: 0.8% of a watch run's samples
    }

    /// Marks the current row as rejected (e.g. wrong field count, bad op value).
    public mutating func fail(column: String? = nil, _ reason: String) {
        if failure == nil { failure = (column, reason) }
    }

    public var currentRowFailed: Bool { failure != nil }

    /// Whether column `c` is ignored for the current row (non-key columns of delete rows).
    @inline(__always) func ignored(_ c: Int) -> Bool { op == .delete && !isKey[c] }

    public mutating func setNull(_ c: Int) {
        if !ignored(c) && !schema.columns[c].nullable {
            fail(column: schema.columns[c].name, "NULL in a NOT NULL column")
        }
        batch.columns[c].appendNull()
    }

    private mutating func bad(_ c: Int, _ raw: UnsafeRawBufferPointer, _ what: String? = nil) {
        let text = SourceLocation.excerpt(String(decoding: raw, as: UTF8.self))
        let type = schema.columns[c].type
        fail(column: schema.columns[c].name, what ?? "invalid \(type) value '\(text)'")
        batch.columns[c].appendNull()
    }

    /// Coerces the text `raw` into column `c`.
    public mutating func setText(_ c: Int, _ raw: UnsafeRawBufferPointer) {
        if ignored(c) { batch.columns[c].appendNull(); return }
        if let numbers, schema.columns[c].type.isNumber {
            guard numbers.normalizeNumber(raw, into: &numberText) else { return bad(c, raw) }
            let text = numberText
            text.withUnsafeBytes { coerce(c, $0) }
            return
        }
        if let dates, schema.columns[c].type.isDateOrTime,
           dates.normalizeDate(raw, timestamp: schema.columns[c].type != .date, into: &numberText) {
            let text = numberText
            text.withUnsafeBytes { coerce(c, $0) }
            return
        }
        coerce(c, raw)  // ISO 8601 reads whatever the dialect's formats
    }

    /// Coerces plain text (numbers with `.` decimals) into column `c`.
    mutating func coerce(_ c: Int, _ raw: UnsafeRawBufferPointer) {
        switch schema.columns[c].type {
        case .int64:
            if let v = Coercion.parseInt64(raw) { batch.columns[c].append(int: v) } else { bad(c, raw) }
        case .float64:
            if let v = Coercion.parseDouble(raw) { batch.columns[c].append(double: v) } else { bad(c, raw) }
        case .decimal(let p, let s):
            switch Coercion.parseDecimal(raw, precision: p, scale: s) {
            case .success(let d): batch.columns[c].append(decimal: d)
            case .failure(.syntax): bad(c, raw)
            case .failure(.tooManyDigits(let p)):
                bad(c, raw, "value '\(SourceLocation.excerpt(String(decoding: raw, as: UTF8.self)))' has more than \(p) digits")
            case .failure(.tooManyFractionDigits(let s)):
                bad(c, raw, "value '\(SourceLocation.excerpt(String(decoding: raw, as: UTF8.self)))' has more than \(s) decimal places")
            }
        case .bool:
            if let v = Coercion.parseBool(raw) { batch.columns[c].append(int: v ? 1 : 0) } else { bad(c, raw) }
        case .text:
            if Coercion.isValidUTF8(raw) { batch.columns[c].append(bytes: raw) } else { bad(c, raw, "invalid UTF-8") }
        case .date:
            if let v = Coercion.parseDate(raw) {
                batch.columns[c].append(int: v)
            } else if let t = Coercion.parseTimestamp(raw), t.offsetSeconds == nil, t.wallMicros % 86_400_000_000 == 0 {
                batch.columns[c].append(int: t.wallMicros / 86_400_000_000)
            } else {
                bad(c, raw)
            }
        case .timestamp:
            if let t = Coercion.parseTimestamp(raw) {
                if t.offsetSeconds != nil {
                    bad(c, raw, "value '\(SourceLocation.excerpt(String(decoding: raw, as: UTF8.self)))' has a zone offset; declare the column timestamptz")
                } else {
                    batch.columns[c].append(int: t.wallMicros)
                }
            } else {
                bad(c, raw)
            }
        case .timestamptz:
            if let t = Coercion.parseTimestamp(raw) {
                if t.offsetSeconds == nil, let z = naiveZone { batch.columns[c].append(int: z.utc(wallMicros: t.wallMicros)) } else { batch.columns[c].append(int: t.utcMicros) }
            } else {
                bad(c, raw)
            }
        case .time:
            if let t = Coercion.parseTime(raw) { batch.columns[c].append(int: t) } else { bad(c, raw) }
        case .uuid:
            if Coercion.parseUUID(raw, into: &batch.columns[c].data) {
                batch.columns[c].offsets.append(batch.columns[c].data.count)
                batch.columns[c].validity.append(true)
            } else {
                bad(c, raw)
            }
        case .json:
            do {
                let v = try JSONParser.parse(raw)
                scratch.removeAll(keepingCapacity: true)
                v.write(into: &scratch)
                batch.columns[c].append(bytes: scratch)
            } catch {
                bad(c, raw, error.description)
            }
        case .bytes:
            let start = batch.columns[c].data.count
            if Coercion.parseBytes(raw, into: &batch.columns[c].data) {
                batch.columns[c].offsets.append(batch.columns[c].data.count)
                batch.columns[c].validity.append(true)
            } else {
                batch.columns[c].data.removeSubrange(start...)
                bad(c, raw, "invalid bytes value (expected \\x-prefixed hex or base64)")
            }
        }
    }

    public mutating func setText(_ c: Int, _ s: String) {
        var s = s
        s.withUTF8 { setText(c, UnsafeRawBufferPointer($0)) }
    }

    /// Sets column `c` from an integer (a database value): stored as is in int64, bool (0/1)
    /// and float64 columns, else through its text.
    public mutating func setInt(_ c: Int, _ v: Int64) {
        if ignored(c) { batch.columns[c].appendNull(); return }
        switch schema.columns[c].type {
        case .int64: batch.columns[c].append(int: v)
        case .bool where v == 0 || v == 1: batch.columns[c].append(int: v)
        case .float64: batch.columns[c].append(double: Double(v))
        default: setText(c, String(v))
        }
    }

    /// Sets column `c` from a double (a database value): stored as is in float64 columns,
    /// else through its shortest text.
    public mutating func setDouble(_ c: Int, _ v: Double) {
        if ignored(c) { batch.columns[c].appendNull(); return }
        switch schema.columns[c].type {
        case .float64: batch.columns[c].append(double: v)
        case .decimal(let p, let s?) where p <= 15 && s >= 0 && s <= p && v.isFinite:
            // A decimal SQLite keeps as REAL: rounded to its scale, so a double one bit off
            // (written by another tool) still reads as the value meant.
            let scaled = (v * ExactDecimal.pow10Double(s)).rounded()
            if abs(scaled) < ExactDecimal.pow10Double(p) {
                batch.columns[c].append(decimal: ExactDecimal(significand: Int128(Int64(scaled)), scale: Int16(s)))
                return
            }
            setText(c, ValueText.double(v))
        default: setText(c, ValueText.double(v))
        }
    }

    /// Sets a bytes column from raw bytes (a database blob); other columns read them as text.
    public mutating func setBytes(_ c: Int, _ raw: UnsafeRawBufferPointer) {
        if ignored(c) { batch.columns[c].appendNull(); return }
        if schema.columns[c].type == .bytes { batch.columns[c].append(bytes: raw) } else { setText(c, raw) }
    }

    /// Sets column `c` from value `i` of a column already typed (a Parquet or Avro column):
    /// copied as is when the types match, otherwise converted through its text.
    public mutating func setValue(_ c: Int, from column: Column, at i: Int) {
        if ignored(c) { batch.columns[c].appendNull(); return }
        if column.isNull(i) { setNull(c); return }
        let type = schema.columns[c].type
        if column.type == type && type != .json {
            if type == .text {
                let valid = column.withBytes(at: i) { Coercion.isValidUTF8($0) }
                guard valid else { column.withBytes(at: i) { bad(c, $0, "invalid UTF-8") }; return }
            }
            batch.columns[c].append(from: column, at: i)
            return
        }
        switch (column.type, type) {
        case (.text, _), (.json, _), (.bytes, .text), (.bytes, .json):
            column.withBytes(at: i) { setText(c, $0) }
        default:
            setText(c, ValueText.render(column, i) ?? "")
        }
    }

    /// Coerces a JSON value into column `c`: scalars through their text, objects and arrays
    /// kept as JSON text (for json and text columns only).
    public mutating func setJSON(_ c: Int, _ v: JSONValue) {
        if ignored(c) { batch.columns[c].appendNull(); return }
        switch v {
        case .null: setNull(c)
        case .bool(let b): setJSONBool(c, b)
        case .number(let n):
            var n = n
            n.withUTF8 { setJSONNumber(c, UnsafeRawBufferPointer($0)) }
        case .string(let s):
            if schema.columns[c].type == .json { setText(c, v.text) } else { setText(c, s) }
        case .array: setJSONContainer(c, array: true) { v.write(into: &$0) }
        case .object: setJSONContainer(c, array: false) { v.write(into: &$0) }
        }
    }

    /// Coerces value `t` of a JSON tape into column `c`, as ``setJSON(_:_:)-(_,JSONValue)`` does
    /// the same value parsed: nothing is built but the column's bytes.
    public mutating func setJSON(_ c: Int, _ tape: JSONTape, _ t: Int) {
        if ignored(c) { batch.columns[c].appendNull(); return }
        switch tape.kind(t) {
        case .null: setNull(c)
        case .bool: setJSONBool(c, tape.raw(t).first == UInt8(ascii: "t"))
        case .number: setJSONNumber(c, tape.raw(t))
        case .string:
            var text = scratch
            scratch = []
            if schema.columns[c].type == .json {
                text.removeAll(keepingCapacity: true)
                tape.writeCompact(t, into: &text)
                text.withUnsafeBytes { setText(c, $0) }
            } else {
                tape.text(t, scratch: &text) { setText(c, $0) }
            }
            scratch = text
        case .array: setJSONContainer(c, array: true) { tape.writeCompact(t, into: &$0) }
        case .object: setJSONContainer(c, array: false) { tape.writeCompact(t, into: &$0) }
        }
    }

    /// Coerces a value the ``FlatJSONScanner`` found in `raw` into column `c`, as the
    /// tape's overload does the same value.
    public mutating func setJSON(_ c: Int, _ slot: FlatJSONScanner.Slot, in raw: UnsafeRawBufferPointer) {
        if ignored(c) { batch.columns[c].appendNull(); return }
        let bytes = UnsafeRawBufferPointer(rebasing: raw[slot.start..<slot.end])  // empty for a missing member
        switch slot.kind {
        case .missing, .null: setNull(c)
        case .bool: setJSONBool(c, bytes.first == UInt8(ascii: "t"))
        case .number: setJSONNumber(c, bytes)
        case .string:
            // The scanner checked the string's UTF-8: a text column takes its bytes as they are.
            if schema.columns[c].type == .text { return batch.columns[c].append(bytes: bytes) }
            guard schema.columns[c].type == .json else { return setText(c, bytes) }
            // A plain string's bytes are already JSON between quotes.
            var text = scratch
            scratch = []
            text.removeAll(keepingCapacity: true)
            text.append(UInt8(ascii: "\""))
            text.append(contentsOf: bytes)
            text.append(UInt8(ascii: "\""))
            text.withUnsafeBytes { setText(c, $0) }
            scratch = text
        }
    }

    mutating func setJSONBool(_ c: Int, _ b: Bool) {
        let type = schema.columns[c].type
        switch type {
        case .bool: batch.columns[c].append(int: b ? 1 : 0)
        case .json, .text: setText(c, b ? "true" : "false")
        default: fail(column: schema.columns[c].name, "JSON boolean cannot be \(type)"); batch.columns[c].appendNull()
        }
    }

    mutating func setJSONNumber(_ c: Int, _ raw: UnsafeRawBufferPointer) {
        if schema.columns[c].type == .bool {
            fail(column: schema.columns[c].name, "JSON number \(SourceLocation.excerpt(String(decoding: raw, as: UTF8.self))) cannot be bool")
            batch.columns[c].appendNull()
        } else {
            setText(c, raw)
        }
    }

    /// An array or object: its compact JSON text in json and text columns, else a reject.
    mutating func setJSONContainer(_ c: Int, array: Bool, _ write: (inout [UInt8]) -> Void) {
        let type = schema.columns[c].type
        if type == .json || type == .text {
            scratch.removeAll(keepingCapacity: true)
            write(&scratch)
            batch.columns[c].append(bytes: scratch)
        } else {
            fail(column: schema.columns[c].name, "JSON \(array ? "array" : "object") cannot be \(type)")
            batch.columns[c].appendNull()
        }
    }

    /// Leaves the current row out of the batch, whatever was set in it (not a reject).
    public mutating func dropRow() {
        for c in batch.columns.indices where batch.columns[c].count > batch.lines.count { batch.columns[c].removeLast() }
        failure = nil
    }

    /// Finishes the current row. Returns the reject when a field failed; the row is then
    /// removed from the batch. The caller fills ``RowReject/fields`` from its source.
    public mutating func endRow() -> RowReject? {
        let rows = batch.lines.count
        for c in batch.columns.indices where batch.columns[c].count == rows {
            setNull(c)  // a field the source did not have
        }
        if let failure {
            dropRow()
            return RowReject(line: line, column: failure.column, reason: failure.reason)
        }
        batch.lines.append(line)
        batch.ops.append(op)
        return nil
    }
}
