public import SluiceCore
public import SluiceConfig
public import SluiceStorage
public import Foundation

/// A pipeline's source files: listed (matching its glob, inside a modification-time window)
/// and fetched one at a time — read in place when local, downloaded when remote.
public struct PipelineSource: Sendable {
    /// One file of the source. `key` is nil when the source names a single file or URL.
    public struct File: Sendable, Hashable {
        public var key: String?
        public var etag: String?
        public var modified: Date?
        public init(key: String? = nil, etag: String? = nil, modified: Date? = nil) {
            self.key = key
            self.etag = etag
            self.modified = modified
        }
    }

    public let pipeline: Pipeline
    let location: StorageLocation
    let store: any ObjectStore

    public init(_ pipeline: Pipeline, s3: S3Settings) throws(SluiceError) {
        let p = pipeline.source
        if !p.hasPrefix("s3://"), !p.hasPrefix("http"), !p.hasPrefix("ftp://"), !FileManager.default.fileExists(atPath: p) {
            throw SluiceError(.notFound, "the source \(p) does not exist")
        }
        self.pipeline = pipeline
        location = try StorageLocation(p)
        store = try location.store(config: S3Config.from(s3))
    }

    /// The files to read, in key order: those matching the glob and modified in `[from, to)`.
    public func list(window: (Date?, Date?) = (nil, nil)) async throws(SluiceError) -> [File] {
        if case .local = location.kind, !location.key.isEmpty { return [File()] }  // one file
        if case .http = location.kind { return [File()] }
        let glob = pipeline.glob.map { Glob($0) }
        return try await store.listAll(prefix: glob.map { $0.prefix.hasPrefix(location.key) ? $0.prefix : location.key } ?? location.key)
            .filter { !$0.key.hasSuffix("/") && (glob?.matches($0.key) ?? true) }
            .filter { o in window.0.map { o.lastModified >= $0 } ?? true && window.1.map { o.lastModified < $0 } ?? true }
            .sorted { $0.key < $1.key }
            .map { File(key: $0.key, etag: $0.etag, modified: $0.lastModified) }
    }

    /// Makes `file` local: the path to read, its name for messages, and whether the path is
    /// a download in `dir` (named `n-…` after `n`, keeping the object's extension).
    public func fetch(_ file: File, into dir: String, n: Int = 0) async throws(SluiceError) -> (path: String, name: String, temporary: Bool) {
        switch location.kind {
        case .local(let root):
            let key = file.key ?? location.key
            return ((root as NSString).appendingPathComponent(key), file.key ?? pipeline.source, false)
        case .http:
            let path = "\(dir)/in-\(n)-\((location.key as NSString).lastPathComponent)"
            _ = try await store.download(location.key, to: path, ifMatch: nil)
            return (path, pipeline.source, true)
        case .s3, .ftp:
            let key = file.key ?? location.key
            let path = "\(dir)/in-\(n)-\((key as NSString).lastPathComponent)"
            _ = try await store.download(key, to: path, ifMatch: file.etag)
            return (path, "\(store.displayName)/\(key)", true)
        }
    }

    /// After a run loaded every file: deletes them or moves them to a folder (`after_load:`).
    public func afterLoad(_ files: [File]) async throws(SluiceError) {
        for f in files {
            guard let key = f.key else { continue }
            switch pipeline.afterLoad {
            case .keep: break
            case .delete: try await store.delete(key)
            case .move(let folder):
                let target = folder + (key as NSString).lastPathComponent
                if let ftp = store as? FTPObjectStore { try await ftp.move(key, to: target) } else {
                    try await store.copy(from: key, to: target, ifMatch: nil)
                    try await store.delete(key)
                }
            }
        }
    }
}
