/// Infers a column type from sample values, as dlt does: start with every candidate type
/// and drop those a value does not fit. The narrowest survivor wins; text always fits.
public struct TypeObserver: Sendable {
    struct Candidates: OptionSet, Sendable {
        let rawValue: UInt8
        static let bool = Candidates(rawValue: 1 << 0)
        static let int64 = Candidates(rawValue: 1 << 1)
        static let float64 = Candidates(rawValue: 1 << 2)
        static let date = Candidates(rawValue: 1 << 3)
        static let timestamp = Candidates(rawValue: 1 << 4)
        static let uuid = Candidates(rawValue: 1 << 5)
        static let all: Candidates = [.bool, .int64, .float64, .date, .timestamp, .uuid]
    }

    var candidates: Candidates = .all
    var sawZoned = false
    var sawNaive = false
    var sawNested = false
    public private(set) var values = 0
    public private(set) var nulls = 0

    public init() {}

    public mutating func observeNull() { nulls += 1 }

    /// A text value (a CSV field, a JSON string or number literal).
    public mutating func observe(text raw: UnsafeRawBufferPointer) {
        values += 1
        let b = Coercion.trimmed(raw)
        var keep: Candidates = []
        if candidates.contains(.bool), Coercion.isBoolWord(b) { keep.insert(.bool) }
        if candidates.contains(.int64) || candidates.contains(.float64) {
            // Codes with leading zeros ("007") stay text: a number would lose the zeros.
            let lead = b.first == UInt8(ascii: "-") ? 1 : 0
            let leadingZero = b.count > lead + 1 && b[lead] == 48 && b[lead + 1] != UInt8(ascii: ".")
            if !leadingZero {
                let plainInt = !b.isEmpty && b[lead...].allSatisfy { $0 &- 48 <= 9 } && b.count > lead
                if candidates.contains(.int64), plainInt, Coercion.parseInt64(b) != nil { keep.insert(.int64) }
                if candidates.contains(.float64), b.count > lead, b[lead] &- 48 <= 9 || b[lead] == UInt8(ascii: "."),
                   let d = Coercion.parseDouble(b), d.isFinite {
                    keep.insert(.float64)
                }
            }
        }
        if candidates.contains(.date), Coercion.parseDate(b) != nil { keep.insert(.date) }
        if candidates.contains(.timestamp), let t = Coercion.parseTimestamp(b) {
            keep.insert(.timestamp)
            if t.offsetSeconds == nil { sawNaive = true } else { sawZoned = true }
        }
        if candidates.contains(.uuid), b.count >= 32 {
            var tmp: [UInt8] = []
            if Coercion.parseUUID(b, into: &tmp) { keep.insert(.uuid) }
        }
        candidates = candidates.intersection(keep)
    }

    public mutating func observe(text s: String) {
        var s = s
        s.withUTF8 { observe(text: UnsafeRawBufferPointer($0)) }
    }

    public mutating func observe(json v: JSONValue) {
        switch v {
        case .null: observeNull()
        case .bool: values += 1; candidates = candidates.intersection(.bool)
        case .number(let n): observe(text: n); candidates.remove(.bool)
        case .string(let s): observe(text: s)
        case .array, .object: values += 1; sawNested = true; candidates = []
        }
    }

    /// The narrowest type every observed value fits (text when nothing was seen).
    public var inferred: ColumnType {
        if sawNested { return .json }
        if values == 0 { return .text }
        if candidates.contains(.bool) { return .bool }
        if candidates.contains(.int64) { return .int64 }
        if candidates.contains(.float64) { return .float64 }
        if candidates.contains(.date) { return .date }
        if candidates.contains(.timestamp) { return sawZoned ? .timestamptz : .timestamp }
        if candidates.contains(.uuid) { return .uuid }
        return .text
    }
}
