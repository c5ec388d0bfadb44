public import SluiceCore

/// Writes RFC 4180 CSV that ``CSVDecoder`` (and PostgreSQL, Python, pandas) read back
/// exactly: NULL is an empty unquoted field, and an empty string is `""`.
public struct CSVWriter: Sendable {
    public let dialect: CSVDialect
    public private(set) var output: [UInt8] = []

    public init(dialect: CSVDialect = CSVDialect()) {
        self.dialect = dialect
    }

    /// Bytes written so far; call ``reset()`` after flushing them.
    public mutating func reset() { output.removeAll(keepingCapacity: true) }

    func needsQuotes<C: Collection>(_ v: C) -> Bool where C.Element == UInt8 {
        if v.isEmpty { return true }  // "" is text; an empty unquoted field is NULL
        if v.elementsEqual(dialect.nullToken.utf8) { return true }
        for b in v where b == dialect.delimiter || b == dialect.quote || b == 0x0A || b == 0x0D { return true }
        return false
    }

    public mutating func writeField<C: Collection>(_ v: C?) where C.Element == UInt8 {
        guard let v else {
            output.append(contentsOf: dialect.nullToken.utf8)
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
                let col = cols[i]
                if col.isNull(row) { output.append(contentsOf: dialect.nullToken.utf8); continue }
                switch col.type {
                case .int64:
                    appendInteger(col.ints[row])
                case .text, .json:
                    // Straight from the column's bytes: no String on the way.
                    let (start, end) = (col.offsets[row], col.offsets[row + 1])
                    col.data.withUnsafeBytes { d in writeField(UnsafeRawBufferPointer(rebasing: d[start..<end])) }
                default:
                    writeField(ValueText.render(col, row)?.utf8)
                }
            }
        }
        output.append(0x0A)
    }

    mutating func appendInteger(_ v: Int64) {
        if v == 0 { output.append(UInt8(ascii: "0")); return }
        var digits: (UInt64, Int) = (v.magnitude, 0)
        var tmp = [UInt8](repeating: 0, count: 20)
        while digits.0 > 0 { tmp[digits.1] = UInt8(48 + digits.0 % 10); digits.0 /= 10; digits.1 += 1 }
        if v < 0 { output.append(UInt8(ascii: "-")) }
        for k in stride(from: digits.1 - 1, through: 0, by: -1) { output.append(tmp[k]) }
    }
}
