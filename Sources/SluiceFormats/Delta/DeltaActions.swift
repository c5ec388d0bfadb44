public import SluiceCore

/// The `protocol` action: the reader version and features a client must implement.
public struct DeltaProtocol: Sendable, Hashable {
    public var minReaderVersion: Int
    public var minWriterVersion: Int
    public var readerFeatures: [String]
    public var writerFeatures: [String]

    /// Reader features Sluice implements. `variantType` only matters when a variant column
    /// is read (refused then, by the schema); `vacuumProtocolCheck` asks nothing of readers.
    public static let supportedReaderFeatures: Set<String> = ["columnMapping", "deletionVectors", "timestampNtz", "vacuumProtocolCheck", "variantType"]

    /// Throws, naming them, when the table needs reader features Sluice lacks.
    public func checkReadable() throws(SluiceError) {
        guard minReaderVersion <= 3 else {
            throw SluiceError(.unsupported, "the table needs Delta reader version \(minReaderVersion); Sluice reads versions 1 to 3")
        }
        guard minReaderVersion == 3 else { return }
        let missing = readerFeatures.filter { !Self.supportedReaderFeatures.contains($0) }
        if !missing.isEmpty {
            throw SluiceError(.unsupported, "the table uses Delta reader feature\(missing.count == 1 ? "" : "s") \(missing.map { "'\($0)'" }.joined(separator: ", ")), which Sluice does not read")
        }
    }

    /// Whether column mapping applies (reader version 2, or 3 with the feature listed).
    public var columnMapping: Bool { minReaderVersion == 2 || (minReaderVersion == 3 && readerFeatures.contains("columnMapping")) }
}

/// The `metaData` action: schema, partition columns and table properties.
public struct DeltaMetadata: Sendable, Hashable {
    public var id: String
    public var schemaString: String
    public var partitionColumns: [String]
    public var configuration: [String: String]
    public var provider: String

    public init(id: String, schemaString: String, partitionColumns: [String], configuration: [String: String], provider: String) {
        self.id = id
        self.schemaString = schemaString
        self.partitionColumns = partitionColumns
        self.configuration = configuration
        self.provider = provider
    }
}

/// Where the rows a file lost to deletes are listed (the protocol's DeletionVectorDescriptor).
public struct DeletionVectorDescriptor: Sendable, Hashable {
    public var storageType: String
    public var pathOrInlineDv: String
    public var offset: Int64?
    public var sizeInBytes: Int
    public var cardinality: Int64

    /// `<storageType><pathOrInlineDv>[@offset]`: with the path, a logical file's identity.
    public var uniqueId: String { storageType + pathOrInlineDv + (offset.map { "@\($0)" } ?? "") }
}

/// An `add` (or, with `isRemove`, a `remove`) of one logical file.
public struct DeltaFileAction: Sendable, Hashable {
    /// The path as the log has it, URI-encoded.
    public var path: String
    /// Partition values by (physical) column name; nil is NULL.
    public var partitionValues: [String: String?]
    public var size: Int64
    public var modificationTime: Int64
    public var dataChange: Bool
    /// The `stats` JSON text, when written.
    public var stats: String?
    public var deletionVector: DeletionVectorDescriptor?

    public init(path: String, partitionValues: [String: String?], size: Int64, modificationTime: Int64, dataChange: Bool, stats: String?,
                deletionVector: DeletionVectorDescriptor?) {
        self.path = path
        self.partitionValues = partitionValues
        self.size = size
        self.modificationTime = modificationTime
        self.dataChange = dataChange
        self.stats = stats
        self.deletionVector = deletionVector
    }

    /// The key of a logical file in log replay: its path and its deletion vector.
    public var key: String { path + "\u{0}" + (deletionVector?.uniqueId ?? "") }
}

/// One action of a commit or a checkpoint row. Actions Sluice has no use for (`txn`,
/// `domainMetadata`, `commitInfo`'s details) are kept only as far as replay needs them.
public enum DeltaAction: Sendable, Hashable {
    case protocolAction(DeltaProtocol)
    case metadata(DeltaMetadata)
    case add(DeltaFileAction)
    case remove(DeltaFileAction)
    case cdc(DeltaFileAction)
    /// `commitInfo`: its timestamp (milliseconds) or in-commit timestamp, when written.
    case commitInfo(timestamp: Int64?)
    /// A V2 checkpoint's `sidecar`: its file actions live in another file.
    case sidecar(path: String)
    /// Anything else (`txn`, `domainMetadata`, `checkpointMetadata`, unknown actions).
    case other

    /// Parses one action: a JSON object with one member named after the action. `null`
    /// members (as checkpoint rows have for the other actions) are skipped.
    public static func parse(_ json: JSONValue) throws(SluiceError) -> DeltaAction? {
        guard case .object(let members) = json else { throw SluiceError(.malformedFile, "an action is not a JSON object") }
        for m in members where m.value != .null {
            let v = m.value
            switch m.key {
            case "protocol":
                return .protocolAction(DeltaProtocol(minReaderVersion: try int(v, "minReaderVersion", in: m.key), minWriterVersion: try int(v, "minWriterVersion", in: m.key),
                                                     readerFeatures: try strings(v["readerFeatures"], "readerFeatures"), writerFeatures: try strings(v["writerFeatures"], "writerFeatures")))
            case "metaData":
                var conf: [String: String] = [:]
                for (k, value) in try stringMap(v["configuration"], "configuration") { conf[k] = value ?? "" }
                return .metadata(DeltaMetadata(id: try string(v, "id", in: m.key), schemaString: try string(v, "schemaString", in: m.key),
                                               partitionColumns: try strings(v["partitionColumns"], "partitionColumns"), configuration: conf,
                                               provider: v["format"]?["provider"].flatMap(text) ?? "parquet"))
            case "add": return .add(try file(v, m.key))
            case "remove": return .remove(try file(v, m.key))
            case "cdc": return .cdc(try file(v, m.key))
            case "commitInfo":
                let t = v["inCommitTimestamp"].flatMap(number) ?? v["timestamp"].flatMap(number)
                return .commitInfo(timestamp: t)
            case "sidecar": return .sidecar(path: try string(v, "path", in: m.key))
            default: return .other
            }
        }
        return nil
    }

    static func file(_ v: JSONValue, _ action: String) throws(SluiceError) -> DeltaFileAction {
        var dv: DeletionVectorDescriptor?
        if let d = v["deletionVector"], d != .null {
            let size = try int(d, "sizeInBytes", in: "deletionVector")
            let offset = d["offset"].flatMap(number)
            let cardinality = d["cardinality"].flatMap(number) ?? 0
            guard size >= 0, size <= Int(Int32.max), (offset ?? 0) >= 0, cardinality >= 0 else {
                throw SluiceError(.malformedFile, "deletionVector has a negative or outsized size, offset or cardinality")
            }
            dv = DeletionVectorDescriptor(storageType: try string(d, "storageType", in: "deletionVector"), pathOrInlineDv: try string(d, "pathOrInlineDv", in: "deletionVector"),
                                          offset: offset, sizeInBytes: size, cardinality: cardinality)
        }
        return DeltaFileAction(path: try string(v, "path", in: action), partitionValues: try stringMap(v["partitionValues"], "partitionValues"),
                               size: v["size"].flatMap(number) ?? 0, modificationTime: v["modificationTime"].flatMap(number) ?? 0,
                               dataChange: v["dataChange"] != .bool(false), stats: v["stats"].flatMap(text), deletionVector: dv)
    }

    static func text(_ v: JSONValue) -> String? {
        if case .string(let s) = v { return s }
        return nil
    }

    static func number(_ v: JSONValue) -> Int64? {
        if case .number(let n) = v { return Int64(n) }
        return nil
    }

    static func string(_ v: JSONValue, _ key: String, in action: String) throws(SluiceError) -> String {
        guard let s = v[key].flatMap(text) else { throw SluiceError(.malformedFile, "\(action) has no string '\(key)'") }
        return s
    }

    static func int(_ v: JSONValue, _ key: String, in action: String) throws(SluiceError) -> Int {
        guard let n = v[key].flatMap(number), let i = Int(exactly: n) else { throw SluiceError(.malformedFile, "\(action) has no integer '\(key)'") }
        return i
    }

    static func strings(_ v: JSONValue?, _ key: String) throws(SluiceError) -> [String] {
        guard let v, v != .null else { return [] }
        guard case .array(let items) = v else { throw SluiceError(.malformedFile, "'\(key)' is not an array") }
        var out: [String] = []
        for item in items {
            guard let s = text(item) else { throw SluiceError(.malformedFile, "'\(key)' holds a value that is not a string") }
            out.append(s)
        }
        return out
    }

    /// A JSON object of strings (or nulls). Checkpoints written as Parquet maps come back
    /// the same way (the nested reader renders maps as objects).
    static func stringMap(_ v: JSONValue?, _ key: String) throws(SluiceError) -> [String: String?] {
        guard let v, v != .null else { return [:] }
        guard case .object(let members) = v else { throw SluiceError(.malformedFile, "'\(key)' is not an object") }
        var out: [String: String?] = [:]
        for m in members {
            switch m.value {
            case .string(let s): out[m.key] = .some(s)
            case .null: out[m.key] = .some(nil)
            default: throw SluiceError(.malformedFile, "'\(key)' holds '\(m.key)' that is not a string")
            }
        }
        return out
    }
}

/// The state of a table at one version, built by replaying its log: the protocol, the
/// metadata and the logical files present. Pure: the actions come from the caller.
public struct DeltaSnapshotBuilder: Sendable {
    public private(set) var protocolAction: DeltaProtocol?
    public private(set) var metadata: DeltaMetadata?
    /// Live files by logical key, and the order they were first seen (stable reads).
    var files: [String: DeltaFileAction] = [:]
    var order: [String] = []
    /// Commit timestamps (ms) by version, from `commitInfo`.
    public private(set) var timestamps: [Int64: Int64] = [:]

    public init() {}

    /// Applies a checkpoint's actions (already reconciled: removes are only tombstones).
    public mutating func applyCheckpoint(_ actions: [DeltaAction]) throws(SluiceError) {
        for a in actions {
            switch a {
            case .protocolAction(let p): protocolAction = p
            case .metadata(let m): metadata = m
            case .add(let f): put(f)
            case .sidecar: throw SluiceError(.unsupported, "the checkpoint keeps its files in sidecars (Delta's v2Checkpoint), which Sluice does not read")
            default: break
            }
        }
    }

    /// Applies one commit. Within a commit, removes go first: a file whose deletion vector
    /// changed is removed with the old one and added with the new one, in any order.
    public mutating func applyCommit(version: Int64, _ actions: [DeltaAction]) {
        for case .remove(let f) in actions {
            files[f.key] = nil
        }
        for a in actions {
            switch a {
            case .protocolAction(let p): protocolAction = p
            case .metadata(let m): metadata = m
            case .add(let f): put(f)
            case .commitInfo(let t?): timestamps[version] = t
            default: break
            }
        }
    }

    /// Whether the logical file with `key` is live.
    func contains(_ key: String) -> Bool { files[key] != nil }

    mutating func put(_ f: DeltaFileAction) {
        if files.updateValue(f, forKey: f.key) == nil { order.append(f.key) }
    }

    /// The live files, in the order the log first named them.
    public var liveFiles: [DeltaFileAction] {
        var seen = Set<String>()
        return order.compactMap { k in seen.insert(k).inserted ? files[k] : nil }
    }
}
