/// The dialect of a CSV file. Defaults follow RFC 4180 and PostgreSQL's CSV format:
/// comma, double quote, a header line, and an unquoted empty field meaning NULL.
public struct CSVDialect: Sendable, Hashable, Codable {
    public var delimiter: UInt8 = UInt8(ascii: ",")
    public var quote: UInt8 = UInt8(ascii: "\"")
    /// An unquoted field equal to this text is NULL. The default is the empty string.
    public var nullToken: String = ""
    /// Whether the first record names the columns. The default is true.
    public var header: Bool = true
    /// Whether the delimiter may be taken from the file (nobody declared one): `.tsv`/`.tab`
    /// mean tab, else the first lines are sniffed. Not part of the dialect's identity.
    public var sniffDelimiter: Bool = true
    /// A single-byte encoding the file is in (nil: UTF-8, unless nobody declared one and the
    /// file's first bytes are not UTF-8, which then read as Windows-1252).
    public var encoding: SingleByteEncoding?
    /// Whether the encoding may be taken from the file (nobody declared one).
    public var sniffEncoding: Bool = true
    /// The decimal separator of numbers (`,` in Brazil's exports). The default is `.`.
    public var decimal: UInt8 = UInt8(ascii: ".")
    /// A thousands separator numbers may carry (`.` in `1.234,56`), or none.
    public var thousands: UInt8?
    /// How dates are written when not ISO 8601 (`%d/%m/%Y`); ISO dates still read.
    public var dateFormat: DateFormat?
    /// How timestamps are written when not ISO 8601 (`%d/%m/%Y %H:%M:%S`); values written
    /// as a date alone (midnight) and ISO timestamps still read.
    public var timestampFormat: DateFormat?
    /// Whether the date or timestamp format may be taken from the file (nobody declared one).
    public var sniffDates: Bool = true

    /// Whether date and timestamp text needs ``normalizeDate(_:timestamp:into:)``.
    public var localDates: Bool { dateFormat != nil || timestampFormat != nil }

    /// `raw` as ISO 8601 text by the dialect's formats (a timestamp column tries the
    /// timestamp format, then the date format); false when no format matches.
    public func normalizeDate(_ raw: UnsafeRawBufferPointer, timestamp: Bool, into out: inout [UInt8]) -> Bool {
        if timestamp, let t = timestampFormat, t.normalize(raw, into: &out) { return true }
        if let d = dateFormat, d.normalize(raw, into: &out) { return true }
        return false
    }

    /// Whether numbers need ``normalizeNumber(_:into:)`` before they parse.
    public var localNumbers: Bool { decimal != UInt8(ascii: ".") || thousands != nil }

    /// `raw` as the plain number text the parsers read (`1.234,56` → `1234.56` with decimal
    /// `,` and thousands `.`); false when it holds a `.` the dialect does not use, or a
    /// thousands separator out of place (groups of three digits: `12.5` is not `125`).
    public func normalizeNumber(_ raw: UnsafeRawBufferPointer, into out: inout [UInt8]) -> Bool {
        out.removeAll(keepingCapacity: true)
        var group = 0  // digits since the last thousands separator (or the start)
        var grouped = false, inFraction = false
        for b in raw {
            if b == decimal && !inFraction {
                if grouped && group != 3 { return false }
                inFraction = true
                out.append(UInt8(ascii: "."))
            } else if let t = thousands, b == t, !inFraction {
                if group == 0 || group > 3 || (grouped && group != 3) { return false }
                grouped = true
                group = 0
            } else if b == UInt8(ascii: ".") {
                return false
            } else {
                if b &- 48 <= 9 { group += 1 }
                out.append(b)
            }
        }
        return !grouped || inFraction || group == 3
    }

    public init(delimiter: UInt8 = UInt8(ascii: ","), quote: UInt8 = UInt8(ascii: "\""), nullToken: String = "", header: Bool = true) {
        self.delimiter = delimiter
        self.quote = quote
        self.nullToken = nullToken
        self.header = header
    }

    public static func == (a: CSVDialect, b: CSVDialect) -> Bool {
        a.delimiter == b.delimiter && a.quote == b.quote && a.nullToken == b.nullToken && a.header == b.header && a.encoding == b.encoding
            && a.decimal == b.decimal && a.thousands == b.thousands && a.dateFormat == b.dateFormat && a.timestampFormat == b.timestampFormat
    }

    public func hash(into h: inout Hasher) {
        h.combine(delimiter)
        h.combine(quote)
        h.combine(nullToken)
        h.combine(header)
        h.combine(encoding)
        h.combine(decimal)
        h.combine(thousands)
        h.combine(dateFormat)
        h.combine(timestampFormat)
    }

    /// The encoding a setting names (`utf-8` is nil), or `error(why)`.
    public static func encoding(named name: String, _ error: (String) -> SluiceError) throws(SluiceError) -> SingleByteEncoding? {
        switch String(name.lowercased().map { $0 == "_" ? "-" : $0 }) {
        case "utf-8", "utf8": return nil
        case "latin-1", "latin1", "iso-8859-1": return .latin1
        case "windows-1252", "cp1252": return .windows1252
        default: throw error("unknown encoding '\(name)' (utf-8, latin-1, windows-1252; UTF-16 files are recognised by their byte-order mark)")
        }
    }

    /// The delimiters a file is sniffed for, most common first.
    public static let candidates: [UInt8] = [UInt8(ascii: ","), UInt8(ascii: ";"), 0x09, UInt8(ascii: "|")]

    /// The delimiter a file's name or first bytes show: tab for `.tsv`/`.tab`; else the
    /// candidate found the same number of times (at least once) on every complete line of
    /// `head`, outside quotes (the first such in ``candidates`` order); nil when none is.
    public static func sniff(head: some Collection<UInt8>, fileName: String, quote: UInt8 = UInt8(ascii: "\"")) -> UInt8? {
        var n = fileName.lowercased()
        if n.hasSuffix(".gz") { n.removeLast(3) }
        if n.hasSuffix(".tsv") || n.hasSuffix(".tab") { return 0x09 }
        var counts: [[Int]] = []  // per complete line, per candidate
        var current = [Int](repeating: 0, count: candidates.count)
        var quoted = false
        for b in head {
            if b == quote { quoted.toggle(); continue }
            if quoted { continue }
            if b == 0x0A {
                if current.contains(where: { $0 > 0 }) || !counts.isEmpty { counts.append(current) }
                current = [Int](repeating: 0, count: candidates.count)
                if counts.count == 20 { break }
            } else if let i = candidates.firstIndex(of: b) {
                current[i] += 1
            }
        }
        guard let first = counts.first else { return nil }
        for i in candidates.indices where first[i] > 0 && counts.allSatisfy({ $0[i] == first[i] }) { return candidates[i] }
        return nil
    }

    enum CodingKeys: String, CodingKey {
        case delimiter, quote, null, header, sniff, encoding, sniffEncoding = "sniff_encoding", decimal, thousands
        case dateFormat = "date_format", timestampFormat = "timestamp_format", sniffDates = "sniff_dates"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        func byte(_ key: CodingKeys, _ def: UInt8) throws -> UInt8 {
            guard let s = try c.decodeIfPresent(String.self, forKey: key) else { return def }
            let resolved = s == "\\t" || s == "tab" ? "\t" : s
            guard resolved.utf8.count == 1, let b = resolved.utf8.first, b != 0x0A, b != 0x0D else {
                throw DecodingError.dataCorruptedError(forKey: key, in: c, debugDescription: "must be one ASCII character other than a newline")
            }
            return b
        }
        delimiter = try byte(.delimiter, UInt8(ascii: ","))
        quote = try byte(.quote, UInt8(ascii: "\""))
        nullToken = try c.decodeIfPresent(String.self, forKey: .null) ?? ""
        header = try c.decodeIfPresent(Bool.self, forKey: .header) ?? true
        sniffDelimiter = try c.decodeIfPresent(Bool.self, forKey: .sniff) ?? !c.contains(.delimiter)
        encoding = try c.decodeIfPresent(SingleByteEncoding.self, forKey: .encoding)
        sniffEncoding = try c.decodeIfPresent(Bool.self, forKey: .sniffEncoding) ?? !c.contains(.encoding)
        decimal = try byte(.decimal, UInt8(ascii: "."))
        thousands = c.contains(.thousands) ? try byte(.thousands, 0) : nil
        func format(_ key: CodingKeys) throws -> DateFormat? {
            guard let p = try c.decodeIfPresent(String.self, forKey: key) else { return nil }
            do { return try DateFormat(p) } catch {
                throw DecodingError.dataCorruptedError(forKey: key, in: c, debugDescription: error.message)
            }
        }
        dateFormat = try format(.dateFormat)
        timestampFormat = try format(.timestampFormat)
        sniffDates = try c.decodeIfPresent(Bool.self, forKey: .sniffDates) ?? !(c.contains(.dateFormat) || c.contains(.timestampFormat))
        if delimiter == quote {
            throw DecodingError.dataCorruptedError(forKey: .quote, in: c, debugDescription: "the quote and the delimiter must differ")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(String(UnicodeScalar(delimiter)), forKey: .delimiter)
        try c.encode(String(UnicodeScalar(quote)), forKey: .quote)
        try c.encode(nullToken, forKey: .null)
        try c.encode(header, forKey: .header)
        try c.encode(sniffDelimiter, forKey: .sniff)
        try c.encodeIfPresent(encoding, forKey: .encoding)
        try c.encode(sniffEncoding, forKey: .sniffEncoding)
        try c.encode(String(UnicodeScalar(decimal)), forKey: .decimal)
        try c.encodeIfPresent(thousands.map { String(UnicodeScalar($0)) }, forKey: .thousands)
        try c.encodeIfPresent(dateFormat?.pattern, forKey: .dateFormat)
        try c.encodeIfPresent(timestampFormat?.pattern, forKey: .timestampFormat)
        try c.encode(sniffDates, forKey: .sniffDates)
    }
}

/// A file format a reader understands. Stable names: `csv`, `ndjson`, `json`, `parquet`, `avro`.
public enum SourceFormat: String, Sendable, Hashable, Codable, CaseIterable {
    case csv
    /// One JSON value per line (also `.jsonl`).
    case ndjson
    /// A JSON array of records, or a sequence of JSON values.
    case json
    /// Apache Parquet: columnar, typed, read by row group.
    case parquet
    /// Apache Avro object container file: typed records in compressed blocks.
    case avro
    /// Text whose records are lines (or groups of lines, ``TextRecords``): one `line` column,
    /// for a pipeline's `parse` step to take apart (`.log`, and `.txt` that is not delimited).
    case text
    /// A Delta Lake table: a folder of Parquet files and the `_delta_log/` naming them.
    case delta

    /// Whether the format is binary and self-describing (typed by its own schema, read by
    /// seeking rather than as a text stream).
    public var isBinary: Bool { self == .parquet || self == .avro || self == .delta }

    /// The format that a file's first bytes announce by a magic number (`PAR1`, `Obj` 1).
    public static func detect(magic head: some Collection<UInt8>) -> SourceFormat? {
        let h = Array(head.prefix(4))
        if h == Array("PAR1".utf8) { return .parquet }
        if h == [0x4F, 0x62, 0x6A, 0x01] { return .avro }
        return nil
    }

    /// The format implied by a file name (`.csv`, `.csv.gz`, `.jsonl`, `.ndjson`, `.json`, `.tsv`, `.tab`,
    /// `.parquet`, `.avro`).
    public static func detect(fromName name: String) -> SourceFormat? {
        var n = name.lowercased()
        if n.hasSuffix(".gz") { n.removeLast(3) }
        if n.hasSuffix(".parquet") || n.hasSuffix(".parq") || n.hasSuffix(".pq") { return .parquet }
        if n.hasSuffix(".avro") { return .avro }
        if n.hasSuffix(".csv") || n.hasSuffix(".tsv") || n.hasSuffix(".tab") || n.hasSuffix(".txt") { return .csv }
        if n.hasSuffix(".log") { return .text }
        if n.hasSuffix(".ndjson") || n.hasSuffix(".jsonl") { return .ndjson }
        if n.hasSuffix(".json") { return .json }
        return nil
    }
}

/// Limits that keep readers bounded whatever the input.
public struct ReadLimits: Sendable, Hashable {
    /// Longest record (CSV record, JSON line or array element), in bytes. Longer records
    /// are rejected. The default is 16 MiB.
    public var maxRecordBytes: Int = 16 << 20
    /// Rows per batch. The default is 16,384.
    public var batchRows: Int = 16_384

    public init(maxRecordBytes: Int = 16 << 20, batchRows: Int = 16_384) {
        self.maxRecordBytes = maxRecordBytes
        self.batchRows = batchRows
    }
}

/// A single-byte text encoding a CSV file may come in (`csv: {encoding: ...}`).
public enum SingleByteEncoding: String, Sendable, Hashable, Codable, CaseIterable {
    /// ISO-8859-1: each byte is the code point of the same number.
    case latin1 = "latin-1"
    /// Windows-1252 (what Excel writes on Western systems): Latin-1 with printable characters
    /// in 0x80–0x9F (`€`, `‚`, `“`, `”`, `–`, …).
    case windows1252 = "windows-1252"

    /// Code points of Windows-1252's 0x80–0x9F (the five unassigned bytes keep Latin-1's).
    static let cp1252High: [UInt32] = [
        0x20AC, 0x81, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0x8D, 0x017D, 0x8F,
        0x90, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x9D, 0x017E, 0x0178,
    ]

    /// The code point byte `b` stands for.
    @inline(__always) public func scalar(_ b: UInt8) -> UInt32 {
        self == .windows1252 && b >= 0x80 && b < 0xA0 ? Self.cp1252High[Int(b - 0x80)] : UInt32(b)
    }

    /// Whether `bytes` (a file's first bytes) are not UTF-8 (``Coercion/isValidUTF8(_:)``),
    /// leaving out a last character the end of the sample may have cut.
    public static func notUTF8(_ bytes: some Collection<UInt8>) -> Bool {
        var b = Array(bytes)
        // Drop an unfinished trailing sequence: its lead byte and up to three continuations.
        if let lead = b.indices.suffix(4).last(where: { b[$0] & 0xC0 != 0x80 }), b[lead] >= 0xC0 {
            let need = b[lead] >= 0xF0 ? 4 : b[lead] >= 0xE0 ? 3 : 2
            if b.count - lead < need { b.removeSubrange(lead...) }
        }
        return !b.withUnsafeBytes { Coercion.isValidUTF8($0) }
    }
}

/// How a text file's lines make records (`record:` beside `format: text`): each line, every
/// `lines` lines, runs of lines separated by blank lines, or from each line that starts with
/// a marker to the next.
public enum TextRecords: Sendable, Hashable {
    case line
    case lines(Int)
    case blankLine
    case startsWith(String)
}

extension TextRecords {
    /// The grouping a file's first lines suggest: blank lines between groups; or a first
    /// word (`Latitude:`) that opens every k-th line and no other; or lines whose shapes
    /// (letters, digits, punctuation) repeat every k lines, at least three times over; else
    /// one record a line.
    public static func guess(_ lines: [String]) -> TextRecords {
        let blank = { (l: String) in l.allSatisfy { $0 == " " || $0 == "\t" } }
        let filled = lines.filter { !blank($0) }
        if lines.contains(where: blank), lines.first.map({ !blank($0) }) == true {
            // Several groups of several lines each, separated by blank lines.
            let groups = lines.split(whereSeparator: blank)
            if groups.count > 1 && groups.contains(where: { $0.count > 1 }) { return .blankLine }
        }
        if let first = filled.first, let marker = first.split(separator: " ").first.map(String.init), !marker.isEmpty {
            let opens = filled.indices.filter { filled[$0].hasPrefix(marker + " ") || filled[$0] == marker }
            if opens.count > 1 {
                let k = opens[1] - opens[0]
                if k > 1, opens.enumerated().allSatisfy({ $0.element == $0.offset * k }) { return .startsWith(marker) }
            }
        }
        return filled.count == lines.count ? period(of: lines.map(shape)).map { .lines($0) } ?? .line : .line
    }

    /// A line's shape: each run of letters `a`, of digits `9`, of blanks one space, other
    /// characters as they are (`John Smith` and `Ana Lima` are both `a a`).
    static func shape(_ line: String) -> String {
        var out = ""
        for c in line {
            let s: Character = c.isLetter ? "a" : c.isNumber ? "9" : c.isWhitespace ? " " : c
            if out.last != s || !(s == "a" || s == "9" || s == " ") { out.append(s) }
        }
        return out
    }

    /// The smallest k in 2...8 with which the shapes repeat (at least three whole periods,
    /// not all one shape), if any.
    static func period(of shapes: [String]) -> Int? {
        guard Set(shapes).count > 1 else { return nil }
        for k in 2...8 where shapes.count >= 3 * k {
            if shapes.indices.allSatisfy({ shapes[$0] == shapes[$0 % k] }) && Set(shapes.prefix(k)).count > 1 { return k }
        }
        return nil
    }

    /// As `sluice.yml` spells it.
    public var yaml: String {
        switch self {
        case .line: "line"
        case .blankLine: "blank_line"
        case .lines(let n): "{lines: \(n)}"
        case .startsWith(let s): "{starts_with: \"\(String(s.flatMap { $0 == "\\" || $0 == "\"" ? ["\\", $0] : [$0] }))\"}"
        }
    }
}
