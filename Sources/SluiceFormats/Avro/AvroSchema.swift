public import SluiceCore

/// An Avro schema node (Avro 1.11). Named types are shared nodes, so a recursive record
/// refers back to itself; readers bound their depth instead of the schema's.
public final class AvroSchema: @unchecked Sendable {
    public enum Kind {
        case null, boolean, int, long, float, double, bytes, string
        case record(name: String, fields: [Field])
        case enumeration(name: String, symbols: [String])
        case array(AvroSchema)
        case map(AvroSchema)
        case fixed(name: String, size: Int)
        case union([AvroSchema])
    }

    public struct Field {
        public var name: String
        public var type: AvroSchema
        public init(name: String, type: AvroSchema) {
            self.name = name
            self.type = type
        }
    }

    /// Logical types Sluice maps to its own types; others read as their underlying type.
    public enum Logical: Equatable {
        case decimal(precision: Int, scale: Int)
        /// A string holding JSON (`"sqlType": "json"`, as Sluice writes json columns).
        case json
        case uuid, date, timeMillis, timeMicros, timestampMillis, timestampMicros, localTimestampMillis, localTimestampMicros
    }

    /// Set once while parsing (a record's fields are filled after it is named, for recursion).
    public internal(set) var kind: Kind
    public let logical: Logical?
    /// On the root: every named node, so that ``releaseGraph()`` can break the reference
    /// cycles a recursive schema makes.
    var named: [AvroSchema] = []

    /// Breaks the cycles of a recursive schema so its nodes can be freed; the schema is
    /// unusable afterwards. ``AvroReader`` calls it when it goes away.
    public func releaseGraph() {
        for n in named { n.kind = .null }
        named = []
    }

    public init(_ kind: Kind, logical: Logical? = nil) {
        self.kind = kind
        self.logical = logical
    }

    /// For a union of null and one other type: the other type and the null branch index.
    public var nullableBranch: (value: AvroSchema, nullIndex: Int)? {
        guard case .union(let b) = kind, b.count == 2 else { return nil }
        if case .null = b[0].kind { return (b[1], 0) }
        if case .null = b[1].kind { return (b[0], 1) }
        return nil
    }

    /// The Sluice column type values of this schema read as.
    public var columnType: ColumnType {
        if let (v, _) = nullableBranch { return v.columnType }
        switch logical {
        case .decimal(let p, let s)?: return p <= ColumnType.maxDecimalPrecision ? .decimal(precision: p, scale: s) : .text
        case .uuid?: return .uuid
        case .json?: return .json
        case .date?: return .date
        case .timeMillis?, .timeMicros?: return .time
        case .timestampMillis?, .timestampMicros?: return .timestamptz
        case .localTimestampMillis?, .localTimestampMicros?: return .timestamp
        case nil: break
        }
        switch kind {
        case .null: return .text
        case .boolean: return .bool
        case .int, .long: return .int64
        case .float, .double: return .float64
        case .bytes, .fixed: return .bytes
        case .string, .enumeration: return .text
        case .record, .array, .map, .union: return .json
        }
    }

    /// The top-level fields of a record schema as nullable Sluice columns.
    public var columns: [ColumnSchema] {
        guard case .record(_, let fields) = kind else { return [] }
        return fields.map { ColumnSchema(name: $0.name, type: $0.type.columnType, nullable: true) }
    }

    /// Parses a schema from its JSON text (the `avro.schema` header entry).
    public static func parse(_ text: [UInt8], fileName: String?) throws(SluiceError) -> AvroSchema {
        let parsed = text.withUnsafeBytes { b in Result { () throws(JSONParseError) in try JSONParser.parse(b) } }
        let json: JSONValue
        switch parsed {
        case .success(let j): json = j
        case .failure(let e): throw SluiceError(.malformedFile, "Avro schema is not valid JSON: \(e.description)", at: SourceLocation(file: fileName))
        }
        var parser = AvroSchemaParser(fileName: fileName)
        let root: AvroSchema
        do throws(SluiceError) {
            root = try parser.parse(json, namespace: nil, depth: 0)
        } catch {
            for n in parser.named.values { n.kind = .null }
            throw error
        }
        root.named = Array(parser.named.values)
        return root
    }
}

/// Resolves an Avro schema's JSON into nodes, with named types by full name.
struct AvroSchemaParser {
    let fileName: String?
    var named: [String: AvroSchema] = [:]
    var nodes = 0

    init(fileName: String?) { self.fileName = fileName }

    func fail(_ m: String) -> SluiceError { SluiceError(.malformedFile, "Avro schema: \(m)", at: SourceLocation(file: fileName)) }

    static func primitive(_ name: String) -> AvroSchema.Kind? {
        switch name {
        case "null": return .null
        case "boolean": return .boolean
        case "int": return .int
        case "long": return .long
        case "float": return .float
        case "double": return .double
        case "bytes": return .bytes
        case "string": return .string
        default: return nil
        }
    }

    func fullName(_ name: String, _ explicitNamespace: String?, _ enclosing: String?) -> String {
        if name.contains(".") { return name }
        if let ns = explicitNamespace ?? enclosing, !ns.isEmpty { return ns + "." + name }
        return name
    }

    mutating func parse(_ v: JSONValue, namespace: String?, depth: Int) throws(SluiceError) -> AvroSchema {
        guard depth < 64 else { throw fail("nests deeper than 64 levels") }
        nodes += 1
        guard nodes < 100_000 else { throw fail("has more than 100,000 types") }
        switch v {
        case .string(let name):
            if let k = Self.primitive(name) { return AvroSchema(k) }
            if let n = named[fullName(name, nil, namespace)] ?? named[name] { return n }
            throw fail("unknown type '\(SourceLocation.excerpt(name))'")
        case .array(let branches):
            guard !branches.isEmpty else { throw fail("an empty union") }
            var out: [AvroSchema] = []
            for b in branches {
                let s = try parse(b, namespace: namespace, depth: depth + 1)
                if case .union = s.kind { throw fail("a union directly inside a union") }
                out.append(s)
            }
            return AvroSchema(.union(out))
        case .object:
            return try parseObject(v, namespace: namespace, depth: depth)
        default:
            throw fail("a type must be a name, an object or a union, not \(SourceLocation.excerpt(v.text))")
        }
    }

    func string(_ v: JSONValue, _ key: String) -> String? {
        if case .string(let s)? = v[key] { return s }
        return nil
    }

    func int(_ v: JSONValue, _ key: String) -> Int? {
        if case .number(let n)? = v[key] { return Int(n) }
        return nil
    }

    mutating func parseObject(_ v: JSONValue, namespace: String?, depth: Int) throws(SluiceError) -> AvroSchema {
        guard let type = v["type"] else { throw fail("a type object without \"type\"") }
        let logicalName = string(v, "logicalType")
        guard case .string(let t) = type else {
            return try parse(type, namespace: namespace, depth: depth + 1)  // {"type": {...}} or {"type": [...]}
        }
        func register(_ node: AvroSchema) throws(SluiceError) -> (String, String?) {
            guard let name = string(v, "name"), !name.isEmpty else { throw fail("a \(t) without a name") }
            let full = fullName(name, string(v, "namespace"), namespace)
            guard named[full] == nil else { throw fail("type '\(full)' is defined twice") }
            named[full] = node
            let ns = full.contains(".") ? String(full[..<full.lastIndex(of: ".")!]) : nil
            return (full, ns)
        }
        switch t {
        case "record", "error":
            let node = AvroSchema(.record(name: "", fields: []))
            let (full, ns) = try register(node)
            guard case .array(let fs)? = v["fields"] else { throw fail("record '\(full)' has no fields list") }
            var fields: [AvroSchema.Field] = []
            var seen = Set<String>()
            for f in fs {
                guard let name = string(f, "name"), let ft = f["type"] else { throw fail("record '\(full)' has a field without a name or type") }
                guard seen.insert(name).inserted else { throw fail("record '\(full)' names field '\(name)' twice") }
                fields.append(AvroSchema.Field(name: name, type: try parse(ft, namespace: ns, depth: depth + 1)))
            }
            node.kind = .record(name: full, fields: fields)
            return node
        case "enum":
            guard case .array(let syms)? = v["symbols"] else { throw fail("an enum without symbols") }
            var symbols: [String] = []
            for s in syms {
                guard case .string(let x) = s else { throw fail("an enum symbol that is not a string") }
                symbols.append(x)
            }
            let node = AvroSchema(.enumeration(name: "", symbols: symbols))
            let (full, _) = try register(node)
            node.kind = .enumeration(name: full, symbols: symbols)
            return node
        case "array":
            guard let items = v["items"] else { throw fail("an array without items") }
            return AvroSchema(.array(try parse(items, namespace: namespace, depth: depth + 1)))
        case "map":
            guard let values = v["values"] else { throw fail("a map without values") }
            return AvroSchema(.map(try parse(values, namespace: namespace, depth: depth + 1)))
        case "fixed":
            guard let size = int(v, "size"), size >= 0, size <= 1 << 20 else { throw fail("a fixed type with a bad size") }
            var logical: AvroSchema.Logical? = nil
            if logicalName == "decimal", let p = int(v, "precision"), p >= 1, let s = Optional(int(v, "scale") ?? 0), s >= 0, s <= p {
                logical = .decimal(precision: p, scale: s)
            } else if logicalName == "uuid" && size == 16 {
                logical = .uuid
            }
            let node = AvroSchema(.fixed(name: "", size: size), logical: logical)
            let (full, _) = try register(node)
            node.kind = .fixed(name: full, size: size)
            return node
        default:
            guard let k = Self.primitive(t) else {
                if let n = named[fullName(t, nil, namespace)] ?? named[t] { return n }
                throw fail("unknown type '\(SourceLocation.excerpt(t))'")
            }
            var logical: AvroSchema.Logical? = nil
            switch (logicalName, k) {
            case ("decimal", .bytes):
                if let p = int(v, "precision"), p >= 1, let s = Optional(int(v, "scale") ?? 0), s >= 0, s <= p { logical = .decimal(precision: p, scale: s) }
            case ("uuid", .string): logical = .uuid
            case (nil, .string) where string(v, "sqlType") == "json": logical = .json
            case ("date", .int): logical = .date
            case ("time-millis", .int): logical = .timeMillis
            case ("time-micros", .long): logical = .timeMicros
            case ("timestamp-millis", .long): logical = .timestampMillis
            case ("timestamp-micros", .long): logical = .timestampMicros
            case ("local-timestamp-millis", .long): logical = .localTimestampMillis
            case ("local-timestamp-micros", .long): logical = .localTimestampMicros
            default: break  // unknown or misplaced logical types read as the underlying type (spec)
            }
            return AvroSchema(k, logical: logical)
        }
    }
}
