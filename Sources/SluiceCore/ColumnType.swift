/// The logical type of a column, shared by every reader, transform and sink.
///
/// Names are stable strings (they are written to `sluice.yml` and to table metadata),
/// so never rename a case's ``name``.
public enum ColumnType: Sendable, Hashable {
    case int64
    case float64
    /// Exact decimal with at most `precision` digits, `scale` of them after the point.
    /// `scale == nil` keeps each value's own scale (like PostgreSQL's bare `numeric`).
    case decimal(precision: Int, scale: Int?)
    case bool
    case text
    /// Calendar date, stored as days since 1970-01-01.
    case date
    /// Wall-clock timestamp without zone, stored as microseconds since 1970-01-01T00:00.
    case timestamp
    /// Instant in time, stored as microseconds since the Unix epoch (UTC).
    case timestamptz
    /// Time of day without zone, stored as microseconds since midnight.
    case time
    case uuid
    /// A JSON document (nested objects and arrays are kept as one value).
    case json
    case bytes

    /// Largest precision an exact decimal may have (fits a 128-bit significand).
    public static let maxDecimalPrecision = 38

    /// The stable spelling used in configuration files and metadata.
    public var name: String {
        switch self {
        case .int64: "int64"
        case .float64: "float64"
        case .decimal(let p, let s?): "decimal(\(p),\(s))"
        case .decimal(let p, nil): p == Self.maxDecimalPrecision ? "decimal" : "decimal(\(p))"
        case .bool: "bool"
        case .text: "text"
        case .date: "date"
        case .timestamp: "timestamp"
        case .timestamptz: "timestamptz"
        case .time: "time"
        case .uuid: "uuid"
        case .json: "json"
        case .bytes: "bytes"
        }
    }

    /// Parses a type name as written in `sluice.yml`. Common SQL synonyms are accepted
    /// (`bigint`, `double`, `numeric(10,2)`, `boolean`, `string`, `jsonb`, `bytea`, ...).
    public init?(parsing raw: String) {
        let s = raw.lowercased().filter { !$0.isWhitespace }
        if let open = s.firstIndex(of: "("), s.hasSuffix(")") {
            let base = s[..<open]
            guard base == "decimal" || base == "numeric" else { return nil }
            let args = s[s.index(after: open)..<s.index(before: s.endIndex)].split(separator: ",", omittingEmptySubsequences: false)
            guard args.count == 1 || args.count == 2, let p = Int(args[0]), p >= 1, p <= Self.maxDecimalPrecision else { return nil }
            if args.count == 2 {
                guard let sc = Int(args[1]), sc >= 0, sc <= p else { return nil }
                self = .decimal(precision: p, scale: sc)
            } else {
                self = .decimal(precision: p, scale: nil)
            }
            return
        }
        switch s {
        case "int64", "int", "integer", "bigint", "long", "int8", "int32", "int16", "smallint": self = .int64
        case "float64", "float", "double", "doubleprecision", "real", "float8", "float32": self = .float64
        case "decimal", "numeric": self = .decimal(precision: Self.maxDecimalPrecision, scale: nil)
        case "bool", "boolean": self = .bool
        case "text", "string", "varchar", "str", "utf8": self = .text
        case "date": self = .date
        case "timestamp", "datetime", "timestampwithouttimezone": self = .timestamp
        case "timestamptz", "timestampwithtimezone": self = .timestamptz
        case "time", "timewithouttimezone": self = .time
        case "uuid": self = .uuid
        case "json", "jsonb": self = .json
        case "bytes", "binary", "bytea", "blob": self = .bytes
        default: return nil
        }
    }

    /// How values of this type are held in a ``Column``.
    public var storage: ColumnStorageKind {
        switch self {
        case .int64, .bool, .date, .timestamp, .timestamptz, .time: .int64
        case .float64: .float64
        case .decimal: .decimal
        case .text, .json, .bytes, .uuid: .bytes
        }
    }
}

/// The physical array a ``Column`` uses for a ``ColumnType``.
public enum ColumnStorageKind: Sendable {
    /// `Int64` per value: integers, booleans (0/1), dates (days), timestamps and times (microseconds).
    case int64
    case float64
    case decimal
    /// Variable-length bytes (UTF-8 text, JSON text, raw bytes, 16-byte UUIDs).
    case bytes
}

extension ColumnType: CustomStringConvertible {
    public var description: String { name }
}

extension ColumnType: Codable {
    public init(from decoder: any Decoder) throws {
        let raw = try decoder.singleValueContainer().decode(String.self)
        guard let t = ColumnType(parsing: raw) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "unknown column type '\(raw)'"))
        }
        self = t
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(name)
    }
}

extension ColumnType {
    /// Whether values are numbers (read with a dialect's decimal and thousands separators).
    public var isDecimal: Bool { if case .decimal = self { true } else { false } }

    /// Dates and timestamps (with or without a zone): what a dialect's date formats read.
    public var isDateOrTime: Bool { self == .date || self == .timestamp || self == .timestamptz }

    public var isNumber: Bool {
        switch self {
        case .int64, .float64, .decimal: true
        default: false
        }
    }
}
