/// Encodes batches as the tab-separated text the servers' bulk paths read — PostgreSQL's
/// `COPY` text format and MySQL's `LOAD DATA ... ESCAPED BY '\\'` (both: `\N` for NULL,
/// backslash escapes) — for a stage whose columns are the schema's, then the source line
/// and the op. A value the server cannot store (a NUL in PostgreSQL text, NaN in MySQL, a
/// year MySQL has no room for) makes its row a reject here, so the bulk load never fails on data.
public struct BulkTextEncoder: Sendable {
    public enum Dialect: Sendable { case postgresCopy, mysqlLoadData }
    let dialect: Dialect
    let types: [ColumnType]
    let names: [String]
    var scratch: [UInt8] = []
    /// Leave delete rows out (a sink that loads straight into a table applies them itself).
    public var skipDeletes = false
    /// Most characters a text value may have, by column (a key of a table Sluice made).
    public var textLimits: [Int: Int] = [:]
    /// Write NaN as NULL (`nan: null`) rather than as NaN (PostgreSQL) or a reject (MySQL).
    public var nanAsNull = false

    public init(schema: TableSchema, dialect: Dialect) {
        types = schema.columns.map(\.type)
        names = schema.columns.map(\.name)
        self.dialect = dialect
    }

    /// The days of 0001-01-01 and 9999-12-31: MySQL's DATE and DATETIME range.
    static let mysqlDays: ClosedRange<Int64> = -719_162...2_932_896

    /// Appends `batch` to `out`; returns the rows refused (with why).
    public mutating func encode(_ batch: RecordBatch, into out: inout [UInt8]) -> [SinkReject] {
        var rejects: [SinkReject] = []
        for r in 0..<batch.count {
            if skipDeletes && batch.ops[r] == .delete { continue }
            if let refused = encodeRow(batch, r, into: &out) { rejects.append(Self.reject(batch, r, refused)) }
        }
        return rejects
    }

    /// Row `r` refused for `reason`, with its values as text.
    public static func reject(_ batch: RecordBatch, _ r: Int, _ reason: String) -> SinkReject {
        SinkReject(line: batch.lines[r], reason: reason, values: batch.columns.map { ValueText.render($0, r) })
    }

    /// Appends row `r` to `out` — its values, then (for a stage) its line and op — or
    /// nothing when the server could not store one of its values: then returns why.
    @inline(__always)
    public mutating func encodeRow(_ batch: RecordBatch, _ r: Int, into out: inout [UInt8], stage: Bool = true) -> String? {
        let pg = dialect == .postgresCopy
        let rowStart = out.count
        var refused: String? = nil
        for c in 0..<types.count {
            if c > 0 { out.append(UInt8(ascii: "\t")) }
            let col = batch.columns[c]
            if col.isNull(r) || (nanAsNull && types[c] == .float64 && col.doubles[r].isNaN) {
                out.append(UInt8(ascii: "\\"))
                out.append(UInt8(ascii: "N"))
                continue
            }
            switch types[c] {
            case .int64:
                writeInt(col.ints[r], &out)
            case .bool:
                out.append(col.ints[r] != 0 ? UInt8(ascii: pg ? "t" : "1") : UInt8(ascii: pg ? "f" : "0"))
            case .float64:
                let v = col.doubles[r]
                if !pg && !v.isFinite { refused = "column '\(names[c])': MySQL cannot store \(ValueText.double(v))" }
                ValueText.double(v, into: &out)
            case .decimal:
                col.decimals[r].write(into: &out)
            case .date:
                if !pg && !Self.mysqlDays.contains(col.ints[r]) { refused = "column '\(names[c])': MySQL dates run from year 1 to 9999" }
                ValueText.date(days: col.ints[r], into: &out)
            case .timestamp, .timestamptz:
                let micros = col.ints[r]
                if !pg && !Self.mysqlDays.contains(micros / 86_400_000_000) { refused = "column '\(names[c])': MySQL timestamps run from year 1 to 9999" }
                // MySQL's DATETIME holds UTC without a zone suffix (the session is UTC).
                ValueText.timestamp(micros: micros, utc: pg && types[c] == .timestamptz, into: &out)
            case .time:
                ValueText.time(micros: col.ints[r], into: &out)
            case .uuid:
                ValueText.uuid(col.bytes(at: r), into: &out)
            case .bytes:
                // `\x...` with its backslash escaped; MySQL's stage unhexes what follows.
                out.append(UInt8(ascii: "\\"))
                ValueText.hexBytes(col.bytes(at: r), into: &out)
            case .text, .json:
                let bytes = col.bytes(at: r)
                if let limit = textLimits[c], bytes.count > limit, String(decoding: bytes, as: UTF8.self).count > limit {
                    refused = "column '\(names[c])': longer than \(limit) characters, the most its key column holds"
                } else if pg && bytes.contains(0) {
                    refused = "column '\(names[c])': PostgreSQL cannot store a NUL byte in text"
                } else if pg && types[c] == .json, bytes.count >= 6, containsEscapedNUL(bytes) {
                    refused = "column '\(names[c])': PostgreSQL jsonb cannot store \\u0000"
                }
                writeEscaped(bytes, &out)
            }
            if refused != nil { break }
        }
        if let refused {
            out.removeSubrange(rowStart...)
            return refused
        }
        if stage {
            out.append(UInt8(ascii: "\t"))
            writeInt(batch.lines[r], &out)
            out.append(UInt8(ascii: "\t"))
            out.append(batch.ops[r] == .delete ? UInt8(ascii: "1") : UInt8(ascii: "0"))
        }
        out.append(UInt8(ascii: "\n"))
        return nil
    }

    @inline(__always) func writeInt(_ v: Int64, _ out: inout [UInt8]) {
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)
        withUnsafeMutableBytes(of: &digits) { buf in
            var x = v.magnitude
            var i = buf.count
            repeat {
                i -= 1
                buf[i] = UInt8(48 + x % 10)
                x /= 10
            } while x > 0
            if v < 0 { i -= 1; buf[i] = UInt8(ascii: "-") }
            out.append(contentsOf: UnsafeRawBufferPointer(rebasing: buf[i...]))
        }
    }

    /// Text with the bulk formats' escapes: backslash, tab, newline, carriage return (and
    /// NUL, which only MySQL stores).
    @inline(__always) func writeEscaped(_ bytes: ArraySlice<UInt8>, _ out: inout [UInt8]) {
        var clean = true
        for b in bytes where b == 0x5C || b == 0x09 || b == 0x0A || b == 0x0D || b == 0 { clean = false; break }
        if clean {
            out.append(contentsOf: bytes)
            return
        }
        for b in bytes {
            switch b {
            case 0x5C: out.append(0x5C); out.append(0x5C)
            case 0x09: out.append(0x5C); out.append(UInt8(ascii: "t"))
            case 0x0A: out.append(0x5C); out.append(UInt8(ascii: "n"))
            case 0x0D: out.append(0x5C); out.append(UInt8(ascii: "r"))
            case 0: out.append(0x5C); out.append(UInt8(ascii: "0"))
            default: out.append(b)
            }
        }
    }

    /// Whether canonical JSON text contains the escape `\u0000`.
    func containsEscapedNUL(_ b: ArraySlice<UInt8>) -> Bool {
        let pattern = Array("\\u0000".utf8)
        var i = b.startIndex
        while i + 6 <= b.endIndex {
            if b[i] == 0x5C && b[i..<(i + 6)].elementsEqual(pattern) {
                // An escaped backslash before it makes it text, not an escape.
                var slashes = 0
                var k = i - 1
                while k >= b.startIndex && b[k] == 0x5C { slashes += 1; k -= 1 }
                if slashes % 2 == 0 { return true }
            }
            i += 1
        }
        return false
    }
}
