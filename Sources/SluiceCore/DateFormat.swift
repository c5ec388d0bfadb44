import Foundation

/// A date or timestamp layout as strftime spells it — `%d/%m/%Y`, `%d/%m/%Y %H:%M:%S` —
/// for text files that do not write ISO 8601. Day, month, hour, minute and second take one
/// or two digits, `%Y` four, `%f` a fraction of a second; anything else is literal.
public struct DateFormat: Sendable, Hashable, CustomStringConvertible {
    public let pattern: String
    enum Token: Hashable { case day, month, year, hour, minute, second, fraction, literal(UInt8) }
    let tokens: [Token]

    public init(_ pattern: String) throws(SluiceError) {
        var tokens: [Token] = []
        var bytes = Array(pattern.utf8)[...]
        while let b = bytes.popFirst() {
            guard b == UInt8(ascii: "%") else { tokens.append(.literal(b)); continue }
            switch bytes.popFirst().map({ Character(UnicodeScalar($0)) }) {
            case "d": tokens.append(.day)
            case "m": tokens.append(.month)
            case "Y": tokens.append(.year)
            case "H": tokens.append(.hour)
            case "M": tokens.append(.minute)
            case "S": tokens.append(.second)
            case "f": tokens.append(.fraction)
            case "%": tokens.append(.literal(UInt8(ascii: "%")))
            default: throw SluiceError(.invalidConfig, "date format '\(pattern)': use %d, %m, %Y, %H, %M, %S and %f")
            }
        }
        for needed in [Token.day, .month, .year] where !tokens.contains(needed) {
            throw SluiceError(.invalidConfig, "date format '\(pattern)' needs %d, %m and %Y")
        }
        if tokens.contains(.minute) && !tokens.contains(.hour) { throw SluiceError(.invalidConfig, "date format '\(pattern)' has %M without %H") }
        self.pattern = pattern
        self.tokens = tokens
    }

    public var description: String { pattern }

    init(pattern: String, tokens: [Token]) {
        self.pattern = pattern
        self.tokens = tokens
    }

    /// `dd/mm/yyyy` and `dd/mm/yyyy HH:MM[:SS]`, as sniffed from a file.
    public static let dayFirst = DateFormat(pattern: "%d/%m/%Y", tokens: [.day, .literal(0x2F), .month, .literal(0x2F), .year])
    public static let dayFirstTime = DateFormat(pattern: "%d/%m/%Y %H:%M:%S", tokens: [.day, .literal(0x2F), .month, .literal(0x2F), .year,
                                                                                  .literal(0x20), .hour, .literal(0x3A), .minute, .literal(0x3A), .second])

    /// `raw` (trimmed) rewritten as ISO 8601 — `YYYY-MM-DD`, then ` HH:MM:SS[.f]` when the
    /// format has a time — for the standard parsers to check; false when it does not match.
    public func normalize(_ raw: UnsafeRawBufferPointer, into out: inout [UInt8]) -> Bool {
        let b = Coercion.trimmed(raw)
        var i = 0
        var day: [UInt8] = [], month: [UInt8] = [], year: [UInt8] = []
        var hour: [UInt8] = [], minute: [UInt8] = [], second: [UInt8] = [], fraction: [UInt8] = []
        func digits(_ min: Int, _ max: Int) -> [UInt8]? {
            var d: [UInt8] = []
            while i < b.count, d.count < max, b[i] &- 48 <= 9 { d.append(b[i]); i += 1 }
            return d.count >= min ? d : nil
        }
        for (k, t) in tokens.enumerated() {
            // A time may stop after its minutes: the seconds and fraction are optional.
            if i == b.count, tokens[k...].allSatisfy({ [.second, .fraction, .literal(UInt8(ascii: ":")), .literal(UInt8(ascii: "."))].contains($0) }),
               !hour.isEmpty, !minute.isEmpty { break }
            switch t {
            case .literal(let c):
                guard i < b.count, b[i] == c else { return false }
                i += 1
            case .day: guard let d = digits(1, 2) else { return false }; day = d
            case .month: guard let d = digits(1, 2) else { return false }; month = d
            case .year: guard let d = digits(4, 4) else { return false }; year = d
            case .hour: guard let d = digits(1, 2) else { return false }; hour = d
            case .minute: guard let d = digits(1, 2) else { return false }; minute = d
            case .second: guard let d = digits(1, 2) else { return false }; second = d
            case .fraction: guard let d = digits(1, 9) else { return false }; fraction = d
            }
        }
        guard i == b.count else { return false }
        func two(_ d: [UInt8]) -> [UInt8] { d.count == 1 ? [UInt8(ascii: "0")] + d : d }
        out.removeAll(keepingCapacity: true)
        out += year + [UInt8(ascii: "-")] + two(month) + [UInt8(ascii: "-")] + two(day)
        if !hour.isEmpty {
            out += [UInt8(ascii: " ")] + two(hour) + [UInt8(ascii: ":")] + (minute.isEmpty ? Array("00".utf8) : two(minute))
            out += [UInt8(ascii: ":")] + (second.isEmpty ? Array("00".utf8) : two(second))
            if !fraction.isEmpty { out += [UInt8(ascii: ".")] + fraction }
        }
        return true
    }
}

/// Finds `dd/mm/yyyy` (or `mm/dd/yyyy`) dates in sampled text, never guessing: a column
/// proves day-first when a first field is over 12, month-first when a second one is.
public struct SlashDateSniffer: Sendable {
    /// Per column: every value looked like `N/N/YYYY[ H:M[:S]]`, and what the values showed.
    var all: [Bool]
    var firstOver12: [Bool]
    var secondOver12: [Bool]
    var seen: [Bool]

    public init(columns: Int) {
        all = Array(repeating: true, count: columns)
        firstOver12 = Array(repeating: false, count: columns)
        secondOver12 = Array(repeating: false, count: columns)
        seen = Array(repeating: false, count: columns)
    }

    public mutating func observe(_ column: Int, _ raw: UnsafeRawBufferPointer) {
        guard all[column] else { return }
        let b = Coercion.trimmed(raw)
        var i = 0
        func number(_ max: Int) -> Int? {
            var v = 0, n = 0
            while i < b.count, n < max, b[i] &- 48 <= 9 { v = v * 10 + Int(b[i] &- 48); n += 1; i += 1 }
            return n > 0 ? v : nil
        }
        guard let a = number(2), i < b.count, b[i] == UInt8(ascii: "/") else { all[column] = false; return }
        i += 1
        guard let m = number(2), i < b.count, b[i] == UInt8(ascii: "/") else { all[column] = false; return }
        i += 1
        // The year, then the end or a time (checked when the values are read with the format).
        guard number(4) != nil, i == b.count || b[i] == UInt8(ascii: " ") else { all[column] = false; return }
        if a < 1 || m < 1 || a > 31 || m > 31 || (a > 12 && m > 12) { all[column] = false; return }
        seen[column] = true
        if a > 12 { firstOver12[column] = true }
        if m > 12 { secondOver12[column] = true }
    }

    /// Whether some column proves day-first and none proves month-first (false for no such
    /// column, ambiguous values, or columns that disagree).
    public var dayFirst: Bool {
        let slashColumns = all.indices.filter { all[$0] && seen[$0] }
        let day = slashColumns.contains { firstOver12[$0] }
        let month = slashColumns.contains { secondOver12[$0] }
        return day && !month
    }

    /// Columns whose values all looked like slash dates with no day over 12: ambiguous.
    public var ambiguousColumns: [Int] {
        all.indices.filter { all[$0] && seen[$0] && !firstOver12[$0] && !secondOver12[$0] }
    }
}

/// The zone a naive timestamp (written without an offset) is in when it goes into a
/// timestamptz column: the entity's `timezone:`, else the database session's (as `psql
/// \copy` reads it), else UTC.
public struct NaiveTimeZone: Sendable, Equatable {
    public let identifier: String
    let zone: TimeZone

    /// Nil for a name Foundation does not know.
    public init?(_ identifier: String) {
        guard let z = TimeZone(identifier: identifier) else { return nil }
        self.identifier = identifier
        zone = z
    }

    public static func == (a: NaiveTimeZone, b: NaiveTimeZone) -> Bool { a.identifier == b.identifier }

    /// UTC microseconds of the wall-clock time `micros` in this zone (a time skipped by a
    /// daylight-saving jump takes the offset from before it).
    public func utc(wallMicros: Int64) -> Int64 {
        let wallSeconds = Double(wallMicros / 1_000_000)
        let first = zone.secondsFromGMT(for: Date(timeIntervalSince1970: wallSeconds))
        let second = zone.secondsFromGMT(for: Date(timeIntervalSince1970: wallSeconds - Double(first)))
        return wallMicros - Int64(second) * 1_000_000
    }
}

/// Coordinates written in degrees, minutes and seconds: `30°02′59″S`, `51°12'05"W`,
/// `30° 2' 59.5" N`, `-30°02′59″`, or plain decimal degrees.
public enum Degrees {
    /// Signed decimal degrees (south and west negative), or nil when the text is not one.
    public static func parse(_ text: String) -> Double? {
        var s = Substring(text.trimmingCharacters(in: .whitespaces))
        var sign = 1.0
        if let last = s.last, "NSEWnsew".contains(last) {
            if "SWsw".contains(last) { sign = -sign }
            s = s.dropLast()
        }
        if let first = s.first, "NSEWnsew".contains(first) {
            if "SWsw".contains(first) { sign = -sign }
            s = s.dropFirst()
        }
        s = Substring(s.trimmingCharacters(in: .whitespaces))
        if s.first == "-" { sign = -sign; s = s.dropFirst() } else if s.first == "+" { s = s.dropFirst() }
        // Split at the degree, minute and second marks (any of their common spellings).
        var parts: [Double] = []
        var current = ""
        var marks = 0
        for c in s {
            if c.isNumber || c == "." || c == "," {
                current.append(c == "," ? "." : c)
            } else if "°º˚d".contains(c) || "′'’m".contains(c) || "″\"”s".contains(c) || c == " " {
                if !current.isEmpty {
                    guard let v = Double(current) else { return nil }
                    parts.append(v)
                    current = ""
                    if c != " " { marks += 1 }
                }
            } else {
                return nil
            }
        }
        if !current.isEmpty {
            guard let v = Double(current) else { return nil }
            parts.append(v)
        }
        guard !parts.isEmpty, parts.count <= 3 else { return nil }
        if parts.count > 1 && marks == 0 { return nil }  // "30 2 59" without marks is not taken
        let deg = parts[0], min = parts.count > 1 ? parts[1] : 0, sec = parts.count > 2 ? parts[2] : 0
        guard min < 60, sec < 60, deg <= 180 else { return nil }
        return sign * (deg + min / 60 + sec / 3600)
    }
}
