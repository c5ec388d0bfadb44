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
    let source: Source
    var store: any ObjectStore { source.store }

    public init(_ pipeline: Pipeline, s3: S3Settings) throws(SluiceError) {
        let p = pipeline.source
        if !Source.isRemote(p), !FileManager.default.fileExists(atPath: p) {
            throw SluiceError(.notFound, "the source \(p) does not exist")
        }
        self.pipeline = pipeline
        source = try Source(p, s3: S3Config.from(s3))
    }

    /// The files to read, in key order: those matching the glob and modified in `[from, to)`.
    public func list(window: (Date?, Date?) = (nil, nil)) async throws(SluiceError) -> [File] {
        guard source.isCollection || source.location.kind.isListable else { return [File()] }  // one file or URL
        return try await source.objects(glob: pipeline.glob.map { Glob($0) }, window: window, asPrefix: true)
            .map { File(key: $0.key, etag: $0.etag, modified: $0.lastModified) }
    }

    /// Makes `file` local: the path to read, its name for messages, and whether the path is
    /// a download in `dir` (named `in-n-…` after `n`, keeping the object's extension).
    /// `hashing`: also the SHA-256 of its content (nil otherwise).
    public func fetch(_ file: File, into dir: String, n: Int = 0, hashing: Bool = false) async throws(SluiceError) -> Source.LocalFile {
        try await source.fetch(file.key, etag: file.etag, into: dir, prefix: "in-\(n)-", hashing: hashing)
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
