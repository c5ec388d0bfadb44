public import SluiceCore

/// Writes RFC 4180 CSV that ``CSVDecoder`` (and PostgreSQL, Python, pandas) read back
/// exactly: NULL is an empty unquoted field, and an empty string is `""`.
public struct CSVWriter: Sendable {
    public let dialect: CSVDialect
    public private(set) var output: [UInt8] = []
    var scratch: [UInt8] = []

    /// The dialect's NULL token as bytes (compared with every field written).
    let nullBytes: [UInt8]

    /// Whether a number's text (digits, `.`, `-`, `+`, `e`, `NaN`, `Infinity`) can never need
    /// quotes in this dialect, so numbers go out unchecked.
    let plainNumbers: Bool

    public init(dialect: CSVDialect = CSVDialect()) {
        self.dialect = dialect
        nullBytes = Array(dialect.nullToken.utf8)
        let numeric = "0123456789.-+eENaInfity".utf8
        plainNumbers = nullBytes.isEmpty && !numeric.contains(dialect.delimiter) && !numeric.contains(dialect.quote)
    }

    /// Bytes written so far; call ``reset()`` after flushing them.
    public mutating func reset() { output.removeAll(keepingCapacity: true) }

    /// Drops the bytes written after the first `count` (to take back rows not yet flushed).
    public mutating func truncate(to count: Int) { output.removeSubrange(count...) }

    /// Whether a field must be quoted: see ``needsQuotes(raw:)``.
    func needsQuotes<C: Collection>(_ v: C) -> Bool where C.Element == UInt8 {
        v.withContiguousStorageIfAvailable { needsQuotes(raw: UnsafeRawBufferPointer($0)) } ?? needsQuotes(Array(v))
    }

    /// Whether a field must be quoted: it is empty (an empty unquoted field is NULL), is the
    /// NULL token, or holds the delimiter, the quote, LF or CR (checked eight bytes at a time).
    func needsQuotes(raw v: UnsafeRawBufferPointer) -> Bool {
        if v.isEmpty { return true }
        if !nullBytes.isEmpty && v.elementsEqual(nullBytes) { return true }
        let ones: UInt64 = 0x0101_0101_0101_0101
        let (d, q) = (ones &* UInt64(dialect.delimiter), ones &* UInt64(dialect.quote))
        let (lf, cr) = (ones &* 0x0A, ones &* 0x0D)
        @inline(__always) func has(_ x: UInt64, _ m: UInt64) -> Bool {
            let y = x ^ m
            return (y &- ones) & ~y & 0x8080_8080_8080_8080 != 0
        }
        var at = 0
        while at + 8 <= v.count {
            let x = v.loadUnaligned(fromByteOffset: at, as: UInt64.self)
            if has(x, d) || has(x, q) || has(x, lf) || has(x, cr) { return true }
            at += 8
        }
        while at < v.count {
            let b = v[at]
            if b == dialect.delimiter || b == dialect.quote || b == 0x0A || b == 0x0D { return true }
            at += 1
        }
        return false
    }

    public mutating func writeField<C: Collection>(_ v: C?) where C.Element == UInt8 {
        guard let v else {
            output.append(contentsOf: nullBytes)
            return
        }
        if !needsQuotes(v) {
            output.append(contentsOf: v)
            return
        }
        output.append(dialect.quote)
        for b in v {
            if b == dialect.quote { output.append(b) }
            output.append(b)
        }
        output.append(dialect.quote)
    }

    /// ``writeField(_:)`` for bytes held by a caller in another module (a generic call from
    /// there would not be specialized).
    public mutating func writeField(bytes v: UnsafeRawBufferPointer) { writeField(v) }

    public mutating func appendDelimiter() { output.append(dialect.delimiter) }
    public mutating func endRecord() { output.append(0x0A) }

    /// A JSON value as one field: null → NULL, strings as text, numbers and booleans as
    /// written, arrays and objects as their JSON text.
    public mutating func writeJSONField(_ v: JSONValue, scratch: inout [UInt8]) {
        switch v {
        case .null: output.append(contentsOf: nullBytes)
        case .string(let s): writeField(s.utf8)
        case .number(let n): writeField(n.utf8)
        case .bool(let b): output.append(contentsOf: (b ? "true" : "false").utf8)
        case .array, .object:
            scratch.removeAll(keepingCapacity: true)
            v.write(into: &scratch)
            writeField(scratch)
        }
    }

    /// A value of a ``JSONTape`` as one field, written as ``writeJSONField(_:scratch:)``
    /// writes the same value (nil: a missing value, NULL).
    public mutating func writeJSONToken(_ tape: JSONTape, _ t: Int?, scratch: inout [UInt8]) {
        guard let t else {
            output.append(contentsOf: nullBytes)
            return
        }
        switch tape.kind(t) {
        case .null: output.append(contentsOf: nullBytes)
        case .bool: output.append(contentsOf: tape.raw(t))
        case .number: writeField(tape.raw(t))
        case .string: tape.text(t, scratch: &scratch) { writeField($0) }
        case .array, .object:
            scratch.removeAll(keepingCapacity: true)
            tape.writeCompact(t, into: &scratch)
            writeField(scratch)
        }
    }

    /// One record: fields separated by the delimiter, ended by LF.
    public mutating func writeRecord(_ fields: [String?]) {
        for (i, f) in fields.enumerated() {
            if i > 0 { output.append(dialect.delimiter) }
            writeField(f?.utf8)
        }
        output.append(0x0A)
    }

    /// Row `row` of `batch`, each value in its canonical text form.
    public mutating func writeRow(_ batch: RecordBatch, _ row: Int) {
        batch.columns.withUnsafeBufferPointer { cols in
            for i in cols.indices {
                if i > 0 { output.append(dialect.delimiter) }
                // Through the pointer: copying a Column would retain each of its buffers.
                let col = cols.baseAddress! + i
                if col.pointee.isNull(row) { output.append(contentsOf: nullBytes); continue }
                switch col.pointee.type {
                case .int64:
                    appendInteger(col.pointee.ints[row])
                case .float64:
                    let v = col.pointee.doubles[row]
                    if v == v.rounded(), abs(v) < 1e15, v != 0 || v.sign == .plus { appendInteger(Int64(v)) }
                    else if plainNumbers { ValueText.double(v, into: &output) }
                    else { writeField(ValueText.double(v).utf8) }
                case .text, .json:
                    // Straight from the column's bytes: no String on the way.
                    let (start, end) = (col.pointee.offsets[row], col.pointee.offsets[row + 1])
                    col.pointee.data.withUnsafeBytes { d in writeField(bytes: UnsafeRawBufferPointer(rebasing: d[start..<end])) }
                case .date, .timestamp, .timestamptz, .time:
                    scratch.removeAll(keepingCapacity: true)
                    let v = col.pointee.ints[row]
                    switch col.pointee.type {
                    case .date: ValueText.date(days: v, into: &scratch)
                    case .time: ValueText.time(micros: v, into: &scratch)
                    default: ValueText.timestamp(micros: v, utc: col.pointee.type == .timestamptz, into: &scratch)
                    }
                    writeField(scratch)
                default:
                    writeField(ValueText.render(col.pointee, row)?.utf8)
                }
            }
        }
        output.append(0x0A)
    }

    /// Appends the decimal digits of `v` (no allocation).
    mutating func appendInteger(_ v: Int64) {
        if v < 0 { output.append(UInt8(ascii: "-")) }
        var m = v.magnitude
        var digits = 1
        var p: UInt64 = 10
        while digits < 20 && m >= p { digits += 1; p = p &* 10 }
        let start = output.count
        output.append(contentsOf: repeatElement(UInt8(ascii: "0"), count: digits))
        var at = start + digits - 1
        repeat {
            output[at] = UInt8(48 + m % 10)
            m /= 10
            at -= 1
        } while m > 0
    }
}
