import SluiceCore
import SluiceFormats
import SluiceLoad
import SluiceStorage
import Foundation

/// A Delta table in an object store (`delta:s3://bucket/path/`), made local for one read:
/// its log is fetched, the snapshot asked for is worked out, and only that snapshot's data
/// files and deletion vectors are downloaded. The read then goes through the local reader,
/// pinned to the version found, so a commit landing meanwhile changes nothing.
enum DeltaRemote {
    /// Whether `text` names a Delta table in a remote store.
    static func isRemote(_ text: String) -> Bool {
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
        let log = try await store.listAll(prefix: prefix + "_delta_log/")
        if log.isEmpty { throw SluiceError(.notFound, "\(root) is not a Delta table: it has no _delta_log/") }
        for o in log {
            let rel = String(o.key.dropFirst(prefix.count))
            // Only the log's own files (not _sidecars/ or _staged_commits/).
            guard rel.split(separator: "/").count == 2 else { continue }
            _ = try await store.download(o.key, to: local + "/" + rel, ifMatch: nil, hashing: false)
        }
        let snapshot = try DeltaLog.snapshot(LocalDeltaStorage(root: local), at: selector)
        var needed = Set<String>()
        for f in snapshot.files {
            needed.insert(try DeltaLog.relativePath(f.path))
            if let d = f.deletionVector, d.storageType == "u" { needed.insert(try DeletionVector.relativePath(d)) }
        }
        for rel in needed.sorted() {
            _ = try await store.download(prefix + rel, to: local + "/" + rel, ifMatch: nil, hashing: false)
        }
        let pinned: String
        switch selector {
        case .changes(let after, _): pinned = "@v\(after)..v\(snapshot.version)"
        default: pinned = "@v\(snapshot.version)"
        }
        return "delta:" + local + pinned
    }
}
