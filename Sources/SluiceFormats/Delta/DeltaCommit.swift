public import SluiceCore

/// What a Delta write commits, built without I/O: the table's schema in Delta's form, the
/// partition path and values of a row, per-file statistics, and the commit's JSON lines.
public enum DeltaCommit {
    /// The Delta type of a column. Naive timestamps are `timestamp_ntz` (a reader feature);
    /// types Delta lacks (time, uuid, json) are strings.
    public static func deltaType(_ t: ColumnType) -> String {
        switch t {
        case .int64: "long"
        case .float64: "double"
        case .decimal(let p, let s): "decimal(\(p),\(s ?? min(18, p)))"
        case .bool: "boolean"
        case .text, .time, .uuid, .json: "string"
        case .date: "date"
        case .timestamp: "timestamp_ntz"
        case .timestamptz: "timestamp"
        case .bytes: "binary"
        }
    }

    /// The column type a Delta write stores `t` as (what reading it back gives).
    public static func storedType(_ t: ColumnType) -> ColumnType {
        switch t {
        case .time, .uuid, .json: .text
        case .decimal(let p, nil): .decimal(precision: p, scale: min(18, p))
        default: t
        }
    }

    /// The table schema as Delta's `schemaString`.
    public static func schemaString(_ columns: [ColumnSchema]) -> String {
        JSONValue.object([
            JSONMember(key: "type", value: .string("struct")),
            JSONMember(key: "fields", value: .array(columns.map { c in
                .object([JSONMember(key: "name", value: .string(c.name)), JSONMember(key: "type", value: .string(deltaType(c.type))),
                         JSONMember(key: "nullable", value: .bool(c.nullable)), JSONMember(key: "metadata", value: .object([]))])
            })),
        ]).text
    }

    /// The protocol a new table needs: (1, 2), or (3, 7) with `timestampNtz` when a column is
    /// a naive timestamp.
    public static func protocolFor(_ columns: [ColumnSchema]) -> DeltaProtocol {
        if columns.contains(where: { $0.type == .timestamp }) {
            return DeltaProtocol(minReaderVersion: 3, minWriterVersion: 7, readerFeatures: ["timestampNtz"], writerFeatures: ["timestampNtz"])
        }
        return DeltaProtocol(minReaderVersion: 1, minWriterVersion: 2, readerFeatures: [], writerFeatures: [])
    }

    /// A partition value as the log writes it (nil: NULL).
    public static func partitionText(_ col: Column, _ i: Int) -> String? {
        if col.isNull(i) { return nil }
        switch col.type {
        case .timestamptz, .timestamp:
            var out: [UInt8] = []
            ValueText.timestamp(micros: col.ints[i], utc: false, into: &out)
            return String(decoding: out, as: UTF8.self)
        default: return ValueText.render(col, i)
        }
    }

    /// `col=value/` folders for partition values, escaped as Hive does; NULL is
    /// `__HIVE_DEFAULT_PARTITION__`.
    public static func partitionPath(_ values: [(String, String?)]) -> String {
        values.map { name, v in escape(name) + "=" + (v.map(escape) ?? "__HIVE_DEFAULT_PARTITION__") + "/" }.joined()
    }

    static func escape(_ s: String) -> String {
        percentEncoded(s) { u in u >= 0x20 && u < 0x7F && !"\"#%'*/:=?\\{[]^".utf8.contains(u) }
    }

    /// A path as the log's `add.path` has it: a URI, so characters outside the unreserved set
    /// are percent-encoded (readers decode it).
    public static func uriPath(_ path: String) -> String {
        percentEncoded(path) { u in (u >= 0x30 && u <= 0x39) || (u >= 0x41 && u <= 0x5A) || (u >= 0x61 && u <= 0x7A) || "-._~/=".utf8.contains(u) }
    }

    /// `s` with every byte `keep` refuses written `%XX`.
    static func percentEncoded(_ s: String, keep: (UInt8) -> Bool) -> String {
        var out = ""
        for u in s.utf8 {
            if keep(u) { out.append(Character(UnicodeScalar(u))) } else { out += "%" + (u < 16 ? "0" : "") + String(u, radix: 16, uppercase: true) }
        }
        return out
    }

    /// The JSON lines of one commit.
    public static func lines(timestamp: Int64, operation: String, mode: String, partitionBy: [String], protocolAction: DeltaProtocol?,
                             metadata: DeltaMetadata?, adds: [DeltaFileAction], removes: [DeltaFileAction], engine: String) -> [UInt8] {
        var out: [UInt8] = []
        func line(_ key: String, _ members: [JSONMember]) {
            JSONValue.object([JSONMember(key: key, value: .object(members))]).write(into: &out)
            out.append(0x0A)
        }
        line("commitInfo", [JSONMember(key: "timestamp", value: .number(String(timestamp))), JSONMember(key: "operation", value: .string(operation)),
                            JSONMember(key: "operationParameters", value: .object([
                                JSONMember(key: "mode", value: .string(mode)),
                                JSONMember(key: "partitionBy", value: .string(JSONValue.array(partitionBy.map(JSONValue.string)).text)),
                            ])),
                            JSONMember(key: "engineInfo", value: .string(engine)), JSONMember(key: "isBlindAppend", value: .bool(mode == "Append"))])
        if let p = protocolAction {
            var m = [JSONMember(key: "minReaderVersion", value: .number(String(p.minReaderVersion))), JSONMember(key: "minWriterVersion", value: .number(String(p.minWriterVersion)))]
            if p.minReaderVersion == 3 { m.append(JSONMember(key: "readerFeatures", value: .array(p.readerFeatures.map(JSONValue.string)))) }
            if p.minWriterVersion == 7 { m.append(JSONMember(key: "writerFeatures", value: .array(p.writerFeatures.map(JSONValue.string)))) }
            line("protocol", m)
        }
        if let md = metadata {
            line("metaData", [JSONMember(key: "id", value: .string(md.id)),
                              JSONMember(key: "format", value: .object([JSONMember(key: "provider", value: .string("parquet")), JSONMember(key: "options", value: .object([]))])),
                              JSONMember(key: "schemaString", value: .string(md.schemaString)),
                              JSONMember(key: "partitionColumns", value: .array(md.partitionColumns.map(JSONValue.string))),
                              JSONMember(key: "configuration", value: .object(md.configuration.sorted { $0.key < $1.key }.map { JSONMember(key: $0.key, value: .string($0.value)) })),
                              JSONMember(key: "createdTime", value: .number(String(timestamp)))])
        }
        for r in removes {
            line("remove", [JSONMember(key: "path", value: .string(r.path)), JSONMember(key: "deletionTimestamp", value: .number(String(timestamp))),
                            JSONMember(key: "dataChange", value: .bool(true)), JSONMember(key: "extendedFileMetadata", value: .bool(true)),
                            JSONMember(key: "partitionValues", value: partitionJSON(r.partitionValues)), JSONMember(key: "size", value: .number(String(r.size)))]
                 + (r.deletionVector.map { [JSONMember(key: "deletionVector", value: dvJSON($0))] } ?? []))
        }
        for a in adds {
            line("add", [JSONMember(key: "path", value: .string(a.path)), JSONMember(key: "partitionValues", value: partitionJSON(a.partitionValues)),
                         JSONMember(key: "size", value: .number(String(a.size))), JSONMember(key: "modificationTime", value: .number(String(a.modificationTime))),
                         JSONMember(key: "dataChange", value: .bool(true))]
                 + (a.stats.map { [JSONMember(key: "stats", value: .string($0))] } ?? []))
        }
        return out
    }

    /// Whether a write may commit after `theirs`, the commit another writer took its version
    /// with: only an append (`blindAppend`) after a commit that only added files. Throws,
    /// saying what happened, otherwise.
    public static func checkFollows(_ theirs: [DeltaAction], blindAppend: Bool, table: String, version: Int64) throws(SluiceError) {
        let onlyAdds = theirs.allSatisfy { a in
            switch a {
            case .add, .commitInfo, .other, .cdc: return true
            default: return false
            }
        }
        guard blindAppend, onlyAdds else {
            throw SluiceError(.aborted, "\(table): another writer committed version \(version) while this one wrote (\(onlyAdds ? "this write rewrites files it read" : "it changed the table's data or schema")); nothing was committed — run it again")
        }
    }

    static func partitionJSON(_ values: [String: String?]) -> JSONValue {
        .object(values.sorted { $0.key < $1.key }.map { JSONMember(key: $0.key, value: $0.value.map(JSONValue.string) ?? .null) })
    }

    static func dvJSON(_ d: DeletionVectorDescriptor) -> JSONValue {
        .object([JSONMember(key: "storageType", value: .string(d.storageType)), JSONMember(key: "pathOrInlineDv", value: .string(d.pathOrInlineDv)),
                 JSONMember(key: "sizeInBytes", value: .number(String(d.sizeInBytes))), JSONMember(key: "cardinality", value: .number(String(d.cardinality)))]
                + (d.offset.map { [JSONMember(key: "offset", value: .number(String($0)))] } ?? []))
    }
}

/// Per-file statistics as the log's `stats` JSON: the row count, and per column its NULL
/// count and, for ordered types, its minimum and maximum (strings up to 32 characters).
public struct DeltaFileStats: Sendable {
    let columns: [ColumnSchema]
    public private(set) var records: Int64 = 0
    var nulls: [Int64]
    var minInt: [Int64?]
    var maxInt: [Int64?]
    var minDouble: [Double?]
    var maxDouble: [Double?]
    var minText: [[UInt8]?]
    var maxText: [[UInt8]?]

    public init(columns: [ColumnSchema]) {
        self.columns = columns
        let n = columns.count
        nulls = Array(repeating: 0, count: n)
        minInt = Array(repeating: nil, count: n)
        maxInt = Array(repeating: nil, count: n)
        minDouble = Array(repeating: nil, count: n)
        maxDouble = Array(repeating: nil, count: n)
        minText = Array(repeating: nil, count: n)
        maxText = Array(repeating: nil, count: n)
    }

    /// Takes in the rows of `batch` (whose columns are ``columns``, in order).
    public mutating func add(_ batch: RecordBatch) {
        records += Int64(batch.count)
        for (c, col) in batch.columns.enumerated() {
            for i in 0..<col.count {
                if col.isNull(i) { nulls[c] += 1; continue }
                switch col.type {
                case .int64, .date, .timestamp, .timestamptz:
                    let v = col.ints[i]
                    if minInt[c].map({ v < $0 }) ?? true { minInt[c] = v }
                    if maxInt[c].map({ v > $0 }) ?? true { maxInt[c] = v }
                case .float64:
                    let v = col.doubles[i]
                    guard !v.isNaN else { continue }
                    if minDouble[c].map({ v < $0 }) ?? true { minDouble[c] = v }
                    if maxDouble[c].map({ v > $0 }) ?? true { maxDouble[c] = v }
                case .text:
                    col.withBytes(at: i) { b in
                        if minText[c].map({ b.lexicographicallyPrecedes($0) }) ?? true { minText[c] = Array(b) }
                        if maxText[c].map({ $0.lexicographicallyPrecedes(b) }) ?? true { maxText[c] = Array(b) }
                    }
                default: break
                }
            }
        }
    }

    /// The `stats` JSON text; `physical` names the columns as the log keys them.
    public func json() -> String {
        var mins: [JSONMember] = [], maxs: [JSONMember] = [], nullCounts: [JSONMember] = []
        for (c, col) in columns.enumerated() {
            nullCounts.append(JSONMember(key: col.name, value: .number(String(nulls[c]))))
            switch col.type {
            case .int64:
                if let lo = minInt[c], let hi = maxInt[c] { mins.append(JSONMember(key: col.name, value: .number(String(lo)))); maxs.append(JSONMember(key: col.name, value: .number(String(hi)))) }
            case .date:
                if let lo = minInt[c], let hi = maxInt[c] { mins.append(JSONMember(key: col.name, value: .string(Self.date(lo)))); maxs.append(JSONMember(key: col.name, value: .string(Self.date(hi)))) }
            case .timestamp, .timestamptz:
                // Milliseconds, as the protocol keeps them: the minimum rounded down, the maximum up.
                if let lo = minInt[c], let hi = maxInt[c] {
                    let utc = col.type == .timestamptz
                    mins.append(JSONMember(key: col.name, value: .string(Self.millis(Self.floorDiv(lo, 1000) * 1000, utc: utc))))
                    maxs.append(JSONMember(key: col.name, value: .string(Self.millis((Self.floorDiv(hi, 1000) + (hi % 1000 == 0 ? 0 : 1)) * 1000, utc: utc))))
                }
            case .float64:
                if let lo = minDouble[c], let hi = maxDouble[c], lo.isFinite, hi.isFinite {
                    mins.append(JSONMember(key: col.name, value: .number(ValueText.double(lo)))); maxs.append(JSONMember(key: col.name, value: .number(ValueText.double(hi))))
                }
            case .text:
                // A minimum cut to 32 characters is still a lower bound; a maximum that would
                // need cutting is left out.
                if let lo = minText[c] { mins.append(JSONMember(key: col.name, value: .string(String(String(decoding: lo, as: UTF8.self).prefix(32))))) }
                if let hi = maxText[c], String(decoding: hi, as: UTF8.self).count <= 32 { maxs.append(JSONMember(key: col.name, value: .string(String(decoding: hi, as: UTF8.self)))) }
            default: break
            }
        }
        return JSONValue.object([JSONMember(key: "numRecords", value: .number(String(records))), JSONMember(key: "minValues", value: .object(mins)),
                                 JSONMember(key: "maxValues", value: .object(maxs)), JSONMember(key: "nullCount", value: .object(nullCounts))]).text
    }

    static func floorDiv(_ a: Int64, _ b: Int64) -> Int64 { a >= 0 ? a / b : -((-a + b - 1) / b) }

    static func date(_ days: Int64) -> String {
        var out: [UInt8] = []
        ValueText.date(days: days, into: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// `2024-01-02T03:04:05.678Z` (or without the `Z` for a naive timestamp).
    static func millis(_ micros: Int64, utc: Bool) -> String {
        var out: [UInt8] = []
        ValueText.timestamp(micros: micros, utc: false, into: &out)
        var s = String(String(decoding: out, as: UTF8.self).map { $0 == " " ? "T" : $0 })
        if let dot = s.firstIndex(of: ".") { s = String(s[..<dot]) + "." + String(s[s.index(after: dot)...].prefix(3)) } else { s += ".000" }
        return s + (utc ? "Z" : "")
    }
}
