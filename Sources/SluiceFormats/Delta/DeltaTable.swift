public import SluiceCore

/// Where a Delta table's files are: a local folder or an object-store prefix. Paths are
/// relative to the table's root.
public protocol DeltaStorage: Sendable {
    /// The table's location as the user wrote it (for messages).
    var root: String { get }
    /// Names of the files directly inside `_delta_log/`.
    func listLog() throws(SluiceError) -> [String]
    /// A whole (small) file: a log entry, `_last_checkpoint`.
    func read(_ path: String) throws(SluiceError) -> [UInt8]
    /// A file read at offsets: data files, checkpoints, deletion vectors.
    func open(_ path: String) throws(SluiceError) -> any RandomAccessSource
}

/// Which version of a table to read: the latest, a version number (`@v12`), or the
/// version that was current at a time (`@2024-05-01T00:00:00Z`, milliseconds).
public enum DeltaVersionSelector: Sendable, Hashable {
    case latest
    case version(Int64)
    case asOf(milliseconds: Int64)
    /// The changes after version `after` up to `through` (nil: the latest): `@v5..` or
    /// `@v5..v9`. The rows appended; or, when versions removed or rewrote rows, the change data
    /// feed's inserts, updates and deletes — refused for a table without it.
    case changes(after: Int64, through: Int64?)
}

/// One version of a table: its protocol, schema, partition columns and live files.
public struct DeltaSnapshot: Sendable {
    public enum ColumnMapping: String, Sendable { case none, name, id }

    public let root: String
    public let version: Int64
    public let protocolAction: DeltaProtocol
    public let metadata: DeltaMetadata
    public let schema: DeltaSchema
    public let files: [DeltaFileAction]
    public let columnMapping: ColumnMapping
    /// For a `changes` read: the version the changes start after (the files are then only
    /// those added since).
    public var changesAfter: Int64?
    /// For a `changes` read of a table with the change data feed, where deletes and updates
    /// happened: the files to read in order, each with what its rows mean.
    public var changes: [DeltaChange]?

    /// The table's columns, logical names and types.
    public func columns() throws(SluiceError) -> [ColumnSchema] { try schema.columns() }

    /// `<table id>@v<version>`: what a reader records as read, so that a later run can read
    /// only what changed since.
    public var readTag: String { "\(metadata.id)@v\(version)" }

    /// The version a ``readTag`` recorded, when it is this table's (not a table re-created at
    /// the same place).
    public func versionRead(_ tag: String) -> Int64? {
        let parts = tag.split(separator: "@v")
        guard parts.count == 2, parts[0] == metadata.id else { return nil }
        return Int64(parts[1])
    }

    /// The same snapshot reading only `files` (a merge reads the files its keys may touch).
    public func restricted(to files: [DeltaFileAction]) -> DeltaSnapshot {
        var s = DeltaSnapshot(root: root, version: version, protocolAction: protocolAction, metadata: metadata, schema: schema, files: files, columnMapping: columnMapping)
        s.changesAfter = changesAfter
        s.changes = changes
        return s
    }

    /// The name a partition value is keyed by in the log (physical under column mapping).
    public func partitionKey(_ column: String) -> String {
        guard columnMapping != .none, let f = schema.field(named: column), let p = f.physicalName else { return column }
        return p
    }
}

/// One file of a change read: rows added (upserts), rows of a removed file (deletes), or a
/// change data file whose `_change_type` column says, row by row.
public struct DeltaChange: Sendable {
    public enum Kind: Sendable { case added, removed, changeData }
    public let file: DeltaFileAction
    public let kind: Kind
    public let version: Int64
}

/// Reads a table's log: lists it, picks the checkpoint and commits a version needs,
/// replays them and checks the protocol.
public enum DeltaLog {
    static let logDir = "_delta_log/"

    /// What the listing of `_delta_log/` holds.
    struct Listing {
        var commits: Set<Int64> = []
        /// Complete checkpoints by version: the files to read (several parts, or one).
        var checkpoints: [Int64: [String]] = [:]

        init(names: [String]) {
            var parts: [Int64: [Int: [Int: String]]] = [:]  // version → part count → part → name
            for name in names {
                let pieces = name.split(separator: ".", omittingEmptySubsequences: false)
                guard pieces.count >= 2, pieces[0].utf8.count == 20, let v = Int64(pieces[0]), v >= 0 else { continue }
                if pieces.count == 2, pieces[1] == "json" {
                    commits.insert(v)
                } else if pieces.count == 3, pieces[1] == "checkpoint", pieces[2] == "parquet" {
                    checkpoints[v] = [name]
                } else if pieces.count == 5, pieces[1] == "checkpoint", pieces[4] == "parquet",
                          pieces[2].utf8.count == 10, pieces[3].utf8.count == 10, let o = Int(pieces[2]), let p = Int(pieces[3]), p > 1, o >= 1, o <= p {
                    parts[v, default: [:]][p, default: [:]][o] = name
                }
            }
            // A multi-part checkpoint counts only with all its parts (a writer may have died).
            for (v, byCount) in parts where checkpoints[v] == nil {
                if let (p, names) = byCount.first(where: { $0.value.count == $0.key }) {
                    checkpoints[v] = (1...p).compactMap { names[$0] }
                }
            }
        }

        var latest: Int64? { [commits.max(), checkpoints.keys.max()].compactMap { $0 }.max() }
    }

    /// The snapshot `selector` names.
    public static func snapshot(_ storage: some DeltaStorage, at selector: DeltaVersionSelector = .latest) throws(SluiceError) -> DeltaSnapshot {
        let names = try storage.listLog()
        let listing = Listing(names: names)
        guard let latest = listing.latest else {
            throw SluiceError(.notFound, "\(storage.root) has no Delta log (no commits in _delta_log/)")
        }
        let version: Int64
        switch selector {
        case .latest: version = latest
        case .version(let v), .changes(_, let v?):
            guard v <= latest else { throw SluiceError(.notFound, "\(storage.root) has no version \(v): its latest is \(latest)") }
            version = v
        case .changes(_, nil): version = latest
        case .asOf(let ms):
            version = try self.version(asOf: ms, storage, listing)
        }
        if case .changes(let after, _) = selector {
            guard after <= version else { throw SluiceError(.invalidArgument, "\(storage.root): changes after version \(after) up to version \(version) name no versions") }
            for v in (after + 1)..<(version + 1) where !listing.commits.contains(v) {
                throw SluiceError(.notFound, "\(storage.root): the log no longer holds version \(v) (its history was cleaned up), so the changes since version \(after) cannot be read; read the whole table instead (without @v\(after)..)")
            }
        }
        let checkpoint = listing.checkpoints.keys.filter { $0 <= version }.max()
        let first = checkpoint.map { $0 + 1 } ?? 0
        if first <= version, let gap = (first...version).first(where: { !listing.commits.contains($0) }) {
            let oldest = listing.checkpoints.keys.min() ?? listing.commits.min() ?? 0
            throw SluiceError(.notFound, gap < oldest
                ? "\(storage.root): version \(version) is no longer in the log (its oldest readable version is \(oldest); older history was cleaned up)"
                : "\(storage.root): the log lacks version \(gap) (\(logDir)\(fileName(gap)) is missing), so version \(version) cannot be read")
        }
        var builder = DeltaSnapshotBuilder()
        if let checkpoint, let files = listing.checkpoints[checkpoint] {
            for f in files {
                do throws(SluiceError) {
                    try builder.applyCheckpoint(try checkpointActions(storage, logDir + f))
                } catch {
                    throw error.inFile(storage.root + "/" + logDir + f)
                }
            }
            // The checkpoint must hold what its own version's commit did, when that is kept.
            if listing.commits.contains(checkpoint) {
                for a in try commitActions(storage, version: checkpoint) {
                    let (path, present, wanted): (String, Bool, Bool)
                    switch a {
                    case .add(let f): (path, present, wanted) = (f.path, builder.contains(f.key), true)
                    case .remove(let f): (path, present, wanted) = (f.path, builder.contains(f.key), false)
                    default: continue
                    }
                    if present != wanted {
                        throw SluiceError(.malformedFile, "\(storage.root): the checkpoint of version \(checkpoint) disagrees with that version's commit (\(path) is \(wanted ? "added" : "removed") there but \(present ? "live" : "absent") in the checkpoint)",
                                          at: SourceLocation(file: storage.root + "/" + logDir + files[0]))
                    }
                }
            }
        }
        if first <= version {
            for v in first...version {
                try builder.applyCommit(version: v, commitActions(storage, version: v))
            }
        }
        guard let p = builder.protocolAction, let m = builder.metadata else {
            throw SluiceError(.malformedFile, "\(storage.root): the log up to version \(version) has no \(builder.protocolAction == nil ? "protocol" : "metaData") action")
        }
        do throws(SluiceError) {
            try p.checkReadable()
        } catch {
            throw SluiceError(error.code, "\(storage.root) (version \(version)): \(error.message)")
        }
        guard m.provider == "parquet" else { throw SluiceError(.unsupported, "\(storage.root) stores its data as '\(m.provider)'; Sluice reads Delta tables of Parquet files") }
        let schema = try DeltaSchema(parsing: m.schemaString)
        var mapping = DeltaSnapshot.ColumnMapping.none
        if p.columnMapping, let mode = m.configuration["delta.columnMapping.mode"] {
            guard let known = DeltaSnapshot.ColumnMapping(rawValue: mode) else {
                throw SluiceError(.unsupported, "\(storage.root): column mapping mode '\(mode)' is unknown")
            }
            mapping = known
        }
        for c in m.partitionColumns where schema.field(named: c) == nil {
            throw SluiceError(.malformedFile, "\(storage.root): partition column '\(c)' is not in the table schema")
        }
        var files = builder.liveFiles
        var changesAfter: Int64?
        var changes: [DeltaChange]?
        if case .changes(let after, _) = selector {
            changesAfter = after
            do {
                files = try appended(storage, after: after, through: version, live: files, metadata: m)
            } catch where error.code == .unsupported && m.configuration["delta.enableChangeDataFeed"] == "true" {
                // Deletes or updates in between, recorded by the change data feed: read as changes.
                changes = try changeFeed(storage, after: after, through: version, metadata: m)
                files = []
            }
        }
        var snapshot = DeltaSnapshot(root: storage.root, version: version, protocolAction: p, metadata: m, schema: schema, files: files, columnMapping: mapping)
        snapshot.changesAfter = changesAfter
        snapshot.changes = changes
        return snapshot
    }

    /// The live files added in versions `after`+1 through `through`, when those versions only
    /// appended: a version that removed data (a delete, an update, an overwrite, a deletion
    /// vector) or changed the schema is refused, naming it. Compaction (`dataChange: false`)
    /// moves rows without changing them and is skipped.
    static func appended(_ storage: some DeltaStorage, after: Int64, through: Int64, live: [DeltaFileAction], metadata: DeltaMetadata) throws(SluiceError) -> [DeltaFileAction] {
        guard after < through else { return [] }
        var added = Set<String>()
        for v in (after + 1)...through {
            for a in try commitActions(storage, version: v) {
                switch a {
                case .add(let f) where f.dataChange: added.insert(f.key)
                case .remove(let f) where f.dataChange:
                    throw SluiceError(.unsupported, "\(storage.root): version \(v) removed or rewrote rows (\(f.path)), so the changes since version \(after) are not only new rows; read the whole table instead (without @v\(after)..)")
                case .metadata(let m) where m.schemaString != metadata.schemaString || m.partitionColumns != metadata.partitionColumns:
                    throw SluiceError(.unsupported, "\(storage.root): version \(v) changed the table's schema; read the whole table instead (without @v\(after)..)")
                default: break
                }
            }
        }
        return live.filter { added.contains($0.key) }
    }

    /// The files that say what versions `after`+1 through `through` changed, as the protocol's
    /// change data readers take them: a version's `cdc` files when it has some, else its added
    /// files as inserts and its removed files as deletes (compaction is skipped). A version
    /// that changed the schema, or that turned the change data feed off, is refused.
    static func changeFeed(_ storage: some DeltaStorage, after: Int64, through: Int64, metadata: DeltaMetadata) throws(SluiceError) -> [DeltaChange] {
        var out: [DeltaChange] = []
        for v in (after + 1)...through {
            let actions = try commitActions(storage, version: v)
            var cdc: [DeltaChange] = [], removed: [DeltaChange] = [], added: [DeltaChange] = []
            for a in actions {
                switch a {
                case .cdc(let f): cdc.append(DeltaChange(file: f, kind: .changeData, version: v))
                case .add(let f) where f.dataChange: added.append(DeltaChange(file: f, kind: .added, version: v))
                case .remove(let f) where f.dataChange: removed.append(DeltaChange(file: f, kind: .removed, version: v))
                case .metadata(let m) where m.schemaString != metadata.schemaString || m.partitionColumns != metadata.partitionColumns
                                         || m.configuration["delta.enableChangeDataFeed"] != "true":
                    throw SluiceError(.unsupported, "\(storage.root): version \(v) changed the table's schema or its change data feed; read the whole table instead (without @v\(after)..)")
                default: break
                }
            }
            if let bad = (removed + added).first(where: { $0.file.deletionVector != nil }), cdc.isEmpty {
                throw SluiceError(.unsupported, "\(storage.root): version \(v) changed deletion vectors (\(bad.file.path)) without change data files; read the whole table instead (without @v\(after)..)")
            }
            out += cdc.isEmpty ? removed + added : cdc
        }
        return out
    }

    /// The latest version committed at or before `ms` (by each commit's `commitInfo`).
    static func version(asOf ms: Int64, _ storage: some DeltaStorage, _ listing: Listing) throws(SluiceError) -> Int64 {
        var found: Int64?
        for v in listing.commits.sorted() {
            guard let t = try commitTimestamp(storage, version: v) else { continue }
            if t <= ms { found = v } else { break }
        }
        guard let found else {
            throw SluiceError(.notFound, "\(storage.root) has no version committed at or before that time (its log starts at version \(listing.commits.min() ?? 0))")
        }
        return found
    }

    static func commitTimestamp(_ storage: some DeltaStorage, version: Int64) throws(SluiceError) -> Int64? {
        for case .commitInfo(let t) in try commitActions(storage, version: version) { return t }
        return nil
    }

    /// `00000000000000000012.json`.
    public static func fileName(_ version: Int64) -> String {
        let digits = String(version)
        return String(repeating: "0", count: max(0, 20 - digits.count)) + digits + ".json"
    }

    /// The actions of one commit, each line parsed; errors name the file and line.
    public static func commitActions(_ storage: some DeltaStorage, version: Int64) throws(SluiceError) -> [DeltaAction] {
        let name = logDir + fileName(version)
        return try parseCommit(try storage.read(name), fileName: storage.root + "/" + name)
    }

    /// Parses a commit file's bytes: one JSON action per line (blank lines allowed).
    public static func parseCommit(_ bytes: [UInt8], fileName: String) throws(SluiceError) -> [DeltaAction] {
        var out: [DeltaAction] = []
        var line: Int64 = 0
        var start = 0
        while start < bytes.count {
            line += 1
            let end = bytes[start...].firstIndex(of: 0x0A) ?? bytes.count
            defer { start = end + 1 }
            let slice = bytes[start..<end]
            if slice.allSatisfy({ $0 == 0x20 || $0 == 0x0D || $0 == 0x09 }) { continue }
            let at = SourceLocation(file: fileName, line: line)
            let json: JSONValue
            do {
                json = try slice.withUnsafeBytes { (b) throws(JSONParseError) -> JSONValue in try JSONParser.parse(b) }
            } catch {
                throw SluiceError(.malformedFile, "a log entry is not valid JSON (\(error)); the commit is corrupt or was cut short", at: at)
            }
            do throws(SluiceError) {
                if let a = try DeltaAction.parse(json) { out.append(a) }
            } catch {
                throw SluiceError(.malformedFile, error.message, at: at)
            }
        }
        return out
    }

    /// The actions of a Parquet checkpoint (one action per row, in its own column).
    static func checkpointActions(_ storage: some DeltaStorage, _ path: String) throws(SluiceError) -> [DeltaAction] {
        let file = try ParquetFile(source: try storage.open(path), fileName: storage.root + "/" + path)
        let names = ["protocol", "metaData", "add", "remove", "sidecar"].filter { n in file.schema.root.children.contains { $0.name == n } }
        let spec = ReadSpec(schema: TableSchema(columns: names.map { ColumnSchema(name: $0, type: .json) }), fileName: storage.root + "/" + path)
        let reader = try ParquetBatchReader(file: file, spec: spec)
        var out: [DeltaAction] = []
        while let decoded = try reader.next() {
            if let bad = decoded.rejects.first { throw SluiceError(.malformedFile, "checkpoint row \(bad.line) cannot be read: \(bad.reason)") }
            let b = decoded.batch
            for row in 0..<b.count {
                for (c, name) in names.enumerated() where !b.columns[c].isNull(row) {
                    let json: JSONValue
                    do {
                        json = try b.columns[c].withBytes(at: row) { (p) throws(JSONParseError) -> JSONValue in try JSONParser.parse(p) }
                    } catch {
                        throw SluiceError(.malformedFile, "checkpoint row \(row + 1): \(error)")
                    }
                    if let a = try DeltaAction.parse(.object([JSONMember(key: name, value: json)])) { out.append(a) }
                }
            }
        }
        return out
    }

    /// A data file's path as a path under the table root: URI-decoded, and refused when it
    /// is absolute or climbs out of the root.
    public static func relativePath(_ raw: String) throws(SluiceError) -> String {
        guard let decoded = percentDecoded(raw) else { throw SluiceError(.malformedFile, "a file path in the log is not valid URI text: '\(SourceLocation.excerpt(raw))'") }
        if decoded.hasPrefix("/") || decoded.contains("://") || decoded.hasPrefix("file:") || decoded.split(separator: "/").contains("..") {
            throw SluiceError(.refused, "the log names a file outside the table's folder: '\(SourceLocation.excerpt(decoded))'")
        }
        return decoded
    }

    static func percentDecoded(_ s: String) -> String? {
        guard s.utf8.contains(UInt8(ascii: "%")) else { return s }
        var out: [UInt8] = []
        let b = Array(s.utf8)
        var i = 0
        while i < b.count {
            if b[i] == UInt8(ascii: "%") {
                guard i + 2 < b.count, let v = UInt8(String(decoding: b[(i + 1)...(i + 2)], as: UTF8.self), radix: 16) else { return nil }
                out.append(v)
                i += 3
            } else {
                out.append(b[i])
                i += 1
            }
        }
        return String(validating: out, as: UTF8.self)
    }
}
