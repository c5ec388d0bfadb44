public import SluiceCore

/// A classic (V1) checkpoint of a snapshot, as the protocol's "Checkpoint Schema" lays it
/// out: one row each for the protocol and the metadata, one per live file, as structs, maps
/// and lists. Readers start from it instead of replaying every commit before it.
public enum DeltaCheckpoint {
    static let dv = ParquetField.group("deletionVector", [.string("storageType"), .string("pathOrInlineDv"), .int32("offset"), .int32("sizeInBytes"), .int64("cardinality")])
    static let fields: [ParquetField] = [
        .group("protocol", [.int32("minReaderVersion"), .int32("minWriterVersion"), .stringList("readerFeatures"), .stringList("writerFeatures")]),
        .group("metaData", [.string("id"), .string("name"), .string("description"), .group("format", [.string("provider"), .stringMap("options")]),
                            .string("schemaString"), .stringList("partitionColumns"), .int64("createdTime"), .stringMap("configuration")]),
        .group("add", [.string("path"), .stringMap("partitionValues"), .int64("size"), .int64("modificationTime"), .bool("dataChange"), .string("stats"), dv]),
    ]

    /// The checkpoint file's bytes and the number of actions in it.
    public static func bytes(_ s: DeltaSnapshot) throws(SluiceError) -> (bytes: [UInt8], actions: Int) {
        var w = try ParquetNestedWriter(fields: fields)
        let p = s.protocolAction
        try w.append(.object([JSONMember(key: "protocol", value: .object([
            JSONMember(key: "minReaderVersion", value: .number(String(p.minReaderVersion))), JSONMember(key: "minWriterVersion", value: .number(String(p.minWriterVersion))),
            JSONMember(key: "readerFeatures", value: p.minReaderVersion == 3 ? .array(p.readerFeatures.map(JSONValue.string)) : .null),
            JSONMember(key: "writerFeatures", value: p.minWriterVersion == 7 ? .array(p.writerFeatures.map(JSONValue.string)) : .null),
        ]))]))
        let m = s.metadata
        try w.append(.object([JSONMember(key: "metaData", value: .object([
            JSONMember(key: "id", value: .string(m.id)),
            JSONMember(key: "format", value: .object([JSONMember(key: "provider", value: .string(m.provider)), JSONMember(key: "options", value: .object([]))])),
            JSONMember(key: "schemaString", value: .string(m.schemaString)),
            JSONMember(key: "partitionColumns", value: .array(m.partitionColumns.map(JSONValue.string))),
            JSONMember(key: "configuration", value: .object(m.configuration.sorted { $0.key < $1.key }.map { JSONMember(key: $0.key, value: .string($0.value)) })),
        ]))]))
        for f in s.files {
            var members = [JSONMember(key: "path", value: .string(f.path)), JSONMember(key: "partitionValues", value: DeltaCommit.partitionJSON(f.partitionValues)),
                           JSONMember(key: "size", value: .number(String(f.size))), JSONMember(key: "modificationTime", value: .number(String(f.modificationTime))),
                           JSONMember(key: "dataChange", value: .bool(false))]
            if let st = f.stats { members.append(JSONMember(key: "stats", value: .string(st))) }
            if let d = f.deletionVector { members.append(JSONMember(key: "deletionVector", value: DeltaCommit.dvJSON(d))) }
            try w.append(.object([JSONMember(key: "add", value: .object(members))]))
        }
        return (w.bytes(), 2 + s.files.count)
    }

    /// `_last_checkpoint`'s JSON.
    public static func lastCheckpoint(version: Int64, actions: Int) -> [UInt8] {
        Array(JSONValue.object([JSONMember(key: "version", value: .number(String(version))), JSONMember(key: "size", value: .number(String(actions)))]).text.utf8)
    }

    /// `00000000000000000010.checkpoint.parquet`.
    public static func fileName(_ version: Int64) -> String {
        String(DeltaLog.fileName(version).dropLast(".json".count)) + ".checkpoint.parquet"
    }
}
