public import SluiceCore
public import Foundation

/// Files named the way users write them — a local path or folder, `file://…`, `http(s)://…`,
/// `s3://bucket/key-or-prefix/`, `gs://bucket/…`, `gdrive://FOLDER_ID/`, `ftp://host/path` —
/// listed and made local through one ``ObjectStore``. `sluice load`'s remote arguments, a worker's job source and a pipeline's
/// source all fetch through this; the watcher lists and fetches through the same stores.
public struct Source: Sendable {
    /// As the user wrote it.
    public let text: String
    public let location: StorageLocation
    public let store: any ObjectStore
    /// The largest object a fetch accepts (nil: no limit).
    let maxBytes: Int64?

    public init(_ text: String, s3: S3Config, maxBytes: Int64? = nil) throws(SluiceError) {
        self.text = text
        location = try StorageLocation(text)
        store = try location.store(config: s3, maxBytes: maxBytes)
        self.maxBytes = maxBytes
    }

    /// Whether `text` names a remote store rather than a local path.
    public static func isRemote(_ text: String) -> Bool {
        StorageLocation.remoteSchemes.contains(where: text.hasPrefix)
    }

    /// Whether the source names many objects (a folder, or a prefix of a listable store)
    /// rather than one.
    public var isCollection: Bool {
        switch location.kind {
        case .http: false
        case .local: location.key.isEmpty
        case .s3, .gcs, .gdrive, .ftp: location.key.isEmpty || location.key.hasSuffix("/")
        }
    }

    /// The objects it names, in key order: under a folder or prefix, those matching `glob`
    /// and modified in `[from, to)`; else the one object it names (which must exist).
    /// `asPrefix`: a bucket or FTP key without a trailing `/` is a prefix too (pipelines).
    public func objects(glob: Glob? = nil, window: (Date?, Date?) = (nil, nil), asPrefix: Bool = false) async throws(SluiceError) -> [ObjectInfo] {
        guard isCollection || (asPrefix && location.kind.isListable) else {
            guard let head = try await store.head(location.key) else { throw SluiceError(.notFound, "\(text) does not exist") }
            return [head]
        }
        let base = location.key.isEmpty || location.key.hasSuffix("/") ? location.key : location.key + "/"
        let prefix = glob.map { $0.listingPrefix(under: base) } ?? location.key
        return try await store.listAll(prefix: prefix, newerThan: window.0.map { $0.addingTimeInterval(-0.001) })
            .filter { !$0.key.hasSuffix("/") && (glob?.matches($0.key, under: base) ?? true) }
            .filter { o in window.0.map { o.lastModified >= $0 } ?? true && window.1.map { o.lastModified < $0 } ?? true }
            .sorted { $0.key < $1.key }
    }

    /// One object made local.
    public struct LocalFile: Sendable {
        public var path: String
        /// The object as messages name it (`s3://bucket/key`, the path).
        public var name: String
        /// A download the caller owns and removes; false for a local file read in place.
        public var temporary: Bool
        public var size: Int64
        /// Its SHA-256 when asked for.
        public var sha256: String?
    }

    /// Makes `key` (by default the object the source names) local: a local file is read in
    /// place; anything else is downloaded into `dir` as `prefix` + the object's last path
    /// component (so its extension still tells the format), refused when it changed since
    /// it was listed with `etag` or is larger than the limit.
    public func fetch(_ key: String? = nil, etag: String? = nil, into dir: String, prefix: String = "",
                      hashing: Bool = false) async throws(SluiceError) -> LocalFile {
        let key = key ?? location.key
        let name: String
        switch location.kind {
        case .local, .http: name = isCollection ? key : text
        case .s3, .gcs, .gdrive, .ftp: name = "\(store.displayName)/\(key)"
        }
        if case .local(let root) = location.kind {
            let path = (root as NSString).appendingPathComponent(key)
            if hashing {
                let (sha, size) = try Download.sha256(ofFile: path)
                return LocalFile(path: path, name: name, temporary: false, size: size, sha256: sha)
            }
            let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int64) ?? 0
            return LocalFile(path: path, name: name, temporary: false, size: size, sha256: nil)
        }
        // Named like the object, so its extension still tells the format (never `.` or `..`).
        let base = (key as NSString).lastPathComponent
        let path = (dir as NSString).appendingPathComponent(prefix + (["", ".", ".."].contains(base) ? "download" : base))
        let (info, sha) = try await store.download(key, to: path, ifMatch: etag.flatMap { $0.isEmpty ? nil : $0 }, hashing: hashing)
        if let maxBytes, info.size > maxBytes {
            try? FileManager.default.removeItem(atPath: path)
            throw SluiceError(.refused, "\(name) is larger than \(maxBytes) bytes")
        }
        return LocalFile(path: path, name: name, temporary: true, size: info.size, sha256: sha)
    }

    /// `sluice load`'s arguments made local, in order: local paths pass through; a remote
    /// object is downloaded into `scratch`, and a remote prefix stands for every object under it.
    public static func localize(_ args: [String], scratch: String, s3: S3Config,
                                log: (String) -> Void) async throws(SluiceError) -> [String] {
        var paths: [String] = []
        for (i, arg) in args.enumerated() {
            guard isRemote(arg) else { paths.append(arg); continue }
            let source = try Source(arg, s3: s3)
            let objects = try await source.objects()
            if objects.isEmpty { throw SluiceError(.notFound, "no objects under \(arg)") }
            for (j, object) in objects.enumerated() {
                let file = try await source.fetch(object.key, etag: object.etag, into: "\(scratch)/\(i)-\(j)")
                log("fetched \(file.name) (\(file.size) bytes)")
                paths.append(file.path)
            }
        }
        return paths
    }
}
