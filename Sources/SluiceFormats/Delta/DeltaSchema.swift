public import SluiceCore

/// A Delta table's schema (the `schemaString` of its metadata, Spark's JSON form), with
/// each field's physical name and id for column mapping.
public struct DeltaSchema: Sendable, Hashable {
    public indirect enum FieldType: Sendable, Hashable {
        case primitive(String)
        case decimal(precision: Int, scale: Int)
        case structure([Field])
        case array(FieldType)
        case map(FieldType, FieldType)
    }

    public struct Field: Sendable, Hashable {
        public var name: String
        public var type: FieldType
        public var nullable: Bool
        /// `delta.columnMapping.physicalName`, when the table maps columns.
        public var physicalName: String?
        /// `delta.columnMapping.id`.
        public var fieldId: Int32?
    }

    public var fields: [Field]

    public init(fields: [Field]) { self.fields = fields }

    public init(parsing text: String) throws(SluiceError) {
        let json: JSONValue
        do { json = try JSONParser.parse(text) } catch { throw SluiceError(.malformedFile, "the table schema is not valid JSON: \(error)") }
        guard case .structure(let fields) = try Self.type(json) else { throw SluiceError(.malformedFile, "the table schema is not a struct") }
        self.fields = fields
    }

    static func type(_ v: JSONValue) throws(SluiceError) -> FieldType {
        if case .string(let name) = v {
            if name.hasPrefix("decimal") {
                let digits = name.dropFirst("decimal".count).filter { $0 != "(" && $0 != ")" && $0 != " " }.split(separator: ",")
                guard digits.count == 2, let p = Int(digits[0]), let s = Int(digits[1]), p >= 1, p <= ColumnType.maxDecimalPrecision, s >= 0, s <= p else {
                    throw SluiceError(.malformedFile, "the table schema has an invalid type '\(SourceLocation.excerpt(name))'")
                }
                return .decimal(precision: p, scale: s)
            }
            return .primitive(name)
        }
        switch v["type"] {
        case .string("struct")?:
            guard case .array(let items)? = v["fields"] else { throw SluiceError(.malformedFile, "a struct in the table schema has no fields") }
            var fields: [Field] = []
            for item in items {
                guard case .string(let name)? = item["name"], let t = item["type"] else { throw SluiceError(.malformedFile, "a field of the table schema has no name or type") }
                let meta = item["metadata"]
                var id: Int32?
                if case .number(let n)? = meta?["delta.columnMapping.id"] { id = Int32(n) }
                var physical: String?
                if case .string(let p)? = meta?["delta.columnMapping.physicalName"] { physical = p }
                fields.append(Field(name: name, type: try type(t), nullable: item["nullable"] != .bool(false), physicalName: physical, fieldId: id))
            }
            return .structure(fields)
        case .string("array")?:
            guard let e = v["elementType"] else { throw SluiceError(.malformedFile, "an array in the table schema has no elementType") }
            return .array(try type(e))
        case .string("map")?:
            guard let k = v["keyType"], let val = v["valueType"] else { throw SluiceError(.malformedFile, "a map in the table schema has no keyType or valueType") }
            return .map(try type(k), try type(val))
        default:
            throw SluiceError(.malformedFile, "the table schema has a type Sluice does not know: \(SourceLocation.excerpt(v.text))")
        }
    }

    /// The column type a Delta type reads as: nested types as JSON documents.
    public static func columnType(_ t: FieldType, field: String) throws(SluiceError) -> ColumnType {
        switch t {
        case .primitive(let p):
            switch p {
            case "string": return .text
            case "long", "integer", "short", "byte": return .int64
            case "float", "double": return .float64
            case "boolean": return .bool
            case "binary": return .bytes
            case "date": return .date
            case "timestamp": return .timestamptz
            case "timestamp_ntz": return .timestamp
            default: throw SluiceError(.unsupported, "column '\(field)' has Delta type '\(p)', which Sluice does not read")
            }
        case .decimal(let p, let s): return .decimal(precision: p, scale: s)
        case .structure, .array, .map: return .json
        }
    }

    /// The table's columns as Sluice sees them (logical names, mapped types).
    public func columns() throws(SluiceError) -> [ColumnSchema] {
        var out: [ColumnSchema] = []
        for f in fields { out.append(ColumnSchema(name: f.name, type: try Self.columnType(f.type, field: f.name), nullable: f.nullable)) }
        return out
    }

    /// The top-level field named `name`, if any.
    public func field(named name: String) -> Field? { fields.first { $0.name == name } }
}

/// Partition values are strings in the log (the protocol's "Partition Value
/// Serialization"); an empty string or a JSON null is NULL.
public enum DeltaPartitionValue {
    /// The value as text for coercion to `type`, or nil for NULL. Timestamps written as
    /// `2024-01-02 03:04:05` without a zone are taken as UTC.
    public static func text(_ raw: String?, type: ColumnType) -> String? {
        guard let raw, !raw.isEmpty else { return nil }
        if type == .timestamptz, !raw.hasSuffix("Z"), !raw.contains("+"), raw.count >= 19 { return raw + "Z" }
        return raw
    }
}
