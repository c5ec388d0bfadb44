/// Canonical text forms of typed values: what SQLite stores for dates and timestamps,
/// what CSV output and rejects files contain, and what round-trips through ``Coercion``.
public enum ValueText {
    @inline(__always) static func pad(_ v: Int, _ width: Int, into out: inout [UInt8]) {
        var digits: [UInt8] = []
        var x = v
        repeat { digits.append(UInt8(48 + x % 10)); x /= 10 } while x > 0
        if digits.count < width { out.append(contentsOf: repeatElement(48, count: width - digits.count)) }
        out.append(contentsOf: digits.reversed())
    }

    /// `YYYY-MM-DD`.
    public static func date(days: Int64, into out: inout [UInt8]) {
        let (y, m, d) = Coercion.civilFromDays(days)
        pad(y, 4, into: &out)
        out.append(UInt8(ascii: "-"))
        pad(m, 2, into: &out)
        out.append(UInt8(ascii: "-"))
        pad(d, 2, into: &out)
    }

    /// `YYYY-MM-DD HH:MM:SS.ffffff`, always six fraction digits so text order is time order.
    /// With `utc`, a trailing `Z` marks an instant (timestamptz).
    public static func timestamp(micros: Int64, utc: Bool, into out: inout [UInt8]) {
        var days = micros / 86_400_000_000
        var rem = micros % 86_400_000_000
        if rem < 0 { rem += 86_400_000_000; days -= 1 }
        date(days: days, into: &out)
        out.append(UInt8(ascii: " "))
        time(micros: rem, into: &out)
        if utc { out.append(UInt8(ascii: "Z")) }
    }

    /// `HH:MM:SS.ffffff` for microseconds since midnight (0 ..< 86,400,000,000).
    public static func time(micros: Int64, into out: inout [UInt8]) {
        let secs = Int(micros / 1_000_000)
        pad(secs / 3600, 2, into: &out)
        out.append(UInt8(ascii: ":"))
        pad(secs / 60 % 60, 2, into: &out)
        out.append(UInt8(ascii: ":"))
        pad(secs % 60, 2, into: &out)
        out.append(UInt8(ascii: "."))
        pad(Int(micros % 1_000_000), 6, into: &out)
    }

    public static let hexDigits = Array("0123456789abcdef".utf8)

    /// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, lowercase.
    public static func uuid<C: Collection>(_ bytes: C, into out: inout [UInt8]) where C.Element == UInt8 {
        for (i, b) in bytes.enumerated() {
            if i == 4 || i == 6 || i == 8 || i == 10 { out.append(UInt8(ascii: "-")) }
            out.append(hexDigits[Int(b >> 4)])
            out.append(hexDigits[Int(b & 15)])
        }
    }

    /// `\x` + lowercase hex, PostgreSQL's bytea text form.
    public static func hexBytes<C: Collection>(_ bytes: C, into out: inout [UInt8]) where C.Element == UInt8 {
        out.append(UInt8(ascii: "\\"))
        out.append(UInt8(ascii: "x"))
        for b in bytes {
            out.append(hexDigits[Int(b >> 4)])
            out.append(hexDigits[Int(b & 15)])
        }
    }

    /// ``double(_:)`` appended as bytes: a finite fraction goes in with no `String` on the way
    /// (its 17 digits were a heap allocation each; this takes about half the time).
    public static func double(_ v: Double, into out: inout [UInt8]) {
        guard v.isFinite, v != v.rounded() || abs(v) >= 1e15 else { return out.append(contentsOf: double(v).utf8) }
        var stream = ASCIIBytes()
        swap(&stream.bytes, &out)
        v.write(to: &stream)
        swap(&stream.bytes, &out)
    }

    /// A text stream into bytes: the standard library hands a number's digits to
    /// `_writeASCII` as bytes (any other text comes through `write`).
    struct ASCIIBytes: TextOutputStream {
        var bytes: [UInt8] = []
        mutating func write(_ s: String) { bytes.append(contentsOf: s.utf8) }
        mutating func _writeASCII(_ buffer: UnsafeBufferPointer<UInt8>) { bytes.append(contentsOf: buffer) }
    }

    /// Shortest text that reads back as the same double (`1.5`, `1e+300`, `NaN`).
    public static func double(_ v: Double) -> String {
        if v.isNaN { return "NaN" }
        if v.isInfinite { return v < 0 ? "-Infinity" : "Infinity" }
        if v == v.rounded(), abs(v) < 1e15 { return v == 0 && v.sign == .minus ? "-0" : String(Int64(v)) }  // -0 keeps its sign, as PostgreSQL writes it
        return v.description
    }

    /// Appends value `i` of `column` as a JSON value: numbers and booleans as such (NaN and
    /// infinities as strings), JSON as itself, bytes as base64, everything else as a string.
    public static func json(_ column: Column, _ i: Int, into out: inout [UInt8]) {
        if column.isNull(i) { out.append(contentsOf: "null".utf8); return }
        switch column.type {
        case .int64: out.append(contentsOf: String(column.ints[i]).utf8)
        case .bool: out.append(contentsOf: (column.ints[i] != 0 ? "true" : "false").utf8)
        case .float64:
            let v = column.doubles[i]
            if v.isFinite { double(v, into: &out) } else { JSONValue.writeString(bytes: double(v).utf8, into: &out) }
        case .decimal: column.decimals[i].write(into: &out)
        case .json: out.append(contentsOf: column.bytes(at: i))
        case .text: JSONValue.writeString(bytes: column.bytes(at: i), into: &out)
        case .bytes: JSONValue.writeString(bytes: Base64.encode(column.bytes(at: i)).utf8, into: &out)
        case .date, .timestamp, .timestamptz, .time, .uuid:
            var text: [UInt8] = []
            switch column.type {
            case .date: date(days: column.ints[i], into: &text)
            case .timestamp, .timestamptz: timestamp(micros: column.ints[i], utc: column.type == .timestamptz, into: &text)
            case .time: time(micros: column.ints[i], into: &text)
            default: uuid(column.bytes(at: i), into: &text)
            }
            JSONValue.writeString(bytes: text, into: &out)
        }
    }

    /// Value `i` of `column` as text, or nil for NULL.
    public static func render(_ column: Column, _ i: Int) -> String? {
        if column.isNull(i) { return nil }
        var out: [UInt8] = []
        switch column.type {
        case .int64: return String(column.ints[i])
        case .bool: return column.ints[i] != 0 ? "true" : "false"
        case .float64: return double(column.doubles[i])
        case .decimal: return column.decimals[i].text
        case .date: date(days: column.ints[i], into: &out)
        case .timestamp: timestamp(micros: column.ints[i], utc: false, into: &out)
        case .timestamptz: timestamp(micros: column.ints[i], utc: true, into: &out)
        case .time: time(micros: column.ints[i], into: &out)
        case .text, .json: return String(decoding: column.bytes(at: i), as: UTF8.self)
        case .uuid: uuid(column.bytes(at: i), into: &out)
        case .bytes: hexBytes(column.bytes(at: i), into: &out)
        }
        return String(decoding: out, as: UTF8.self)
    }
}
