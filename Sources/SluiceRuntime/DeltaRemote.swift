public import SluiceCore
import SluiceFormats
public import SluiceLoad
public import SluiceStorage
public import SluiceConfig
import SluiceWorker
import Foundation

/// A Delta table in an object store (`delta:s3://bucket/path/`), made local for one read:
/// its log is fetched, the snapshot asked for is worked out, and only that snapshot's data
/// files and deletion vectors are downloaded. The read then goes through the local reader,
/// pinned to the version found, so a commit landing meanwhile changes nothing.
public enum DeltaRemote {
    /// Whether `text` names a Delta table in a remote store.
    public static func isRemote(_ text: String) -> Bool {
        text.hasPrefix("delta:") && Source.isRemote(String(text.dropFirst("delta:".count)))
    }

    /// The local `delta:` text that reads the same snapshot, downloaded under `scratch`.
    static func localize(_ text: String, scratch: String, s3: S3Config) async throws(SluiceError) -> String {
        guard let (root, selector) = try DeltaLocation.parse(text) else { return text }
        let location = try StorageLocation(root + "/")
        guard location.kind.isListable else { throw SluiceError(.unsupported, "\(root): a Delta table is read from a folder, s3:// or ftp://, not over plain HTTP") }
        let store = try location.store(config: s3)
        let prefix = location.key
        let name = String((root as NSString).lastPathComponent.map { $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" ? $0 : "_" })
        let local = (scratch as NSString).appendingPathComponent(name.isEmpty ? "table" : name)
        guard try await fetchLog(store, prefix: prefix, into: local) > 0 else { throw SluiceError(.notFound, "\(root) is not a Delta table: it has no _delta_log/") }
        let snapshot = try DeltaLog.snapshot(LocalDeltaStorage(root: local), at: selector)
        try await fetchData(of: snapshot, store, prefix: prefix, into: local)
        let pinned: String
        switch selector {
        case .changes(let after, _): pinned = "@v\(after)..v\(snapshot.version)"
        default: pinned = "@v\(snapshot.version)"
        }
        return "delta:" + local + pinned
    }

    /// Downloads the log's own files (not `_sidecars/` or `_staged_commits/`) under `local`;
    /// returns how many.
    static func fetchLog(_ store: any ObjectStore, prefix: String, into local: String) async throws(SluiceError) -> Int {
        var n = 0
        for o in try await store.listAll(prefix: prefix + "_delta_log/") {
            let rel = String(o.key.dropFirst(prefix.count))
            guard rel.split(separator: "/").count == 2 else { continue }
            _ = try await store.download(o.key, to: local + "/" + rel, ifMatch: nil, hashing: false)
            n += 1
        }
        return n
    }

    /// Downloads the data files and deletion-vector files `snapshot` reads.
    static func fetchData(of snapshot: DeltaSnapshot, _ store: any ObjectStore, prefix: String, into local: String) async throws(SluiceError) {
        var needed = Set<String>()
        for f in snapshot.files {
            needed.insert(try DeltaLog.relativePath(f.path))
            if let d = f.deletionVector, d.storageType == "u" { needed.insert(try DeletionVector.relativePath(d)) }
        }
        for rel in needed.sorted() { _ = try await store.download(prefix + rel, to: local + "/" + rel, ifMatch: nil, hashing: false) }
    }
}

extension DeltaRemote {
    /// Writes into a Delta table in a bucket (`delta:s3://bucket/path`, `delta:gs://…`): its log
    /// (and, for a merge, the snapshot's files) is fetched into `scratch`, the write is prepared
    /// there by `prepare` (given the local table), its data files are uploaded, then the commit
    /// is put only if absent — after other writers' appends when it only appends.
    /// Returns the version committed.
    public static func write(_ text: String, scratch: String, s3: S3Config, fetchFiles: Bool,
                             prepare: (String, @escaping (DeltaPrepared) -> Void) throws -> Void) async throws -> Int64 {
        guard let (root, _) = try DeltaLocation.parse(text) else { throw SluiceError(.invalidArgument, "\(text) is not a Delta table") }
        let location = try StorageLocation(root + "/")
        guard let store = try location.store(config: s3) as? any ExclusiveCreate else {
            throw SluiceError(.unsupported, "\(root): Sluice writes Delta tables to a folder, an S3 bucket or a Cloud Storage bucket")
        }
        let prefix = location.key
        let local = scratch + "/table"
        try? FileManager.default.createDirectory(atPath: local, withIntermediateDirectories: true)
        _ = try await fetchLog(store, prefix: prefix, into: local)
        if fetchFiles, DeltaLocation.isTable(local) {
            try await fetchData(of: try DeltaLog.snapshot(LocalDeltaStorage(root: local)), store, prefix: prefix, into: local)
        }
        nonisolated(unsafe) var prepared: DeltaPrepared?
        try prepare(local) { prepared = $0 }
        guard let p = prepared else { throw SluiceError(.io, "\(root): the write prepared no commit") }
        for rel in p.files { _ = try await store.upload(prefix + rel, from: local + "/" + rel, contentType: nil) }
        var version = (p.base ?? -1) + 1
        do {
            while !(try await store.putIfAbsent(prefix + "_delta_log/" + DeltaLog.fileName(version), bytes: p.body)) {
                let theirs = try DeltaLog.parseCommit(try await store.get(prefix + "_delta_log/" + DeltaLog.fileName(version), range: nil, ifMatch: nil),
                                                      fileName: root + "/_delta_log/" + DeltaLog.fileName(version))
                try DeltaCommit.checkFollows(theirs, blindAppend: p.blindAppend, table: root, version: version)
                version += 1
            }
        } catch {
            for rel in p.files { try? await store.delete(prefix + rel) }
            throw error
        }
        if version > 0 && version % 10 == 0 { await checkpoint(store, prefix: prefix, local: local, version: version, ours: p.body) }
        return version
    }

    /// Puts the checkpoint of `version` and `_last_checkpoint`, best effort: the commit stands
    /// either way, and readers replay more without it.
    static func checkpoint(_ store: any ObjectStore, prefix: String, local: String, version: Int64, ours: [UInt8]) async {
        let log = local + "/_delta_log/"
        for v in 0..<version where !FileManager.default.fileExists(atPath: log + DeltaLog.fileName(v)) {
            guard (try? await store.download(prefix + "_delta_log/" + DeltaLog.fileName(v), to: log + DeltaLog.fileName(v), ifMatch: nil, hashing: false)) != nil else { return }
        }
        FileManager.default.createFile(atPath: log + DeltaLog.fileName(version), contents: Data(ours))
        guard let s = try? DeltaLog.snapshot(LocalDeltaStorage(root: local), at: .version(version)), let (bytes, actions) = try? DeltaCheckpoint.bytes(s) else { return }
        guard (try? await store.put(prefix + "_delta_log/" + DeltaCheckpoint.fileName(version), bytes: bytes, contentType: nil)) != nil else { return }
        _ = try? await store.put(prefix + "_delta_log/_last_checkpoint", bytes: DeltaCheckpoint.lastCheckpoint(version: version, actions: actions), contentType: "application/json")
    }
}

extension DeltaRemote {
    /// ``write(_:scratch:s3:fetchFiles:prepare:)`` with the configured S3 settings and a scratch
    /// folder under the state folder, removed afterwards.
    public static func write(_ text: String, config: SluiceConfig, fetchFiles: Bool,
                             prepare: (String, @escaping (DeltaPrepared) -> Void) throws -> Void) async throws -> Int64 {
        let scratch = (config.stateDir as NSString).appendingPathComponent("downloads/\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        return try await write(text, scratch: scratch, s3: S3Config.from(config.s3), fetchFiles: fetchFiles, prepare: prepare)
    }
}
