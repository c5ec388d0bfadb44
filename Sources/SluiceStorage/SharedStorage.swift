public import SluiceCore
public import Foundation

/// Where the files jobs need after a request has been answered are kept when Sluice runs on
/// several hosts (`storage:` in sluice.yml, e.g. `s3://bucket/sluice/`): an upload is put
/// there before the client hears 202, its record names the object, and a worker on any host
/// fetches it. Without it, files stay in the local upload folder (one host, or a shared mount).
public struct SharedStorage: Sendable {
    /// The storage's URL, ending in `/`.
    public let url: String
    let source: Source

    public init(_ url: String, s3: S3Config) throws(SluiceError) {
        let root = url.hasSuffix("/") ? url : url + "/"
        guard Source.isRemote(root), !root.hasPrefix("http://"), !root.hasPrefix("https://"), !root.hasPrefix("gdrive://") else {
            throw SluiceError(.invalidConfig, "storage: '\(url)' is not an object store a process can write to (use s3://bucket/prefix/, gs://bucket/prefix/ or ftp://host/path/)")
        }
        self.url = root
        source = try Source(root, s3: s3)
    }

    /// The store's key of `url`, when it lies inside this storage (never through `..`).
    func key(_ url: String) -> String? {
        guard url.hasPrefix(self.url) else { return nil }
        let rest = url.dropFirst(self.url.count)
        guard !rest.isEmpty, !rest.split(separator: "/").contains(where: { $0 == ".." || $0 == "." }) else { return nil }
        return source.location.key + rest
    }

    /// Whether `url` names an object of this storage.
    public func holds(_ url: String) -> Bool { key(url) != nil }

    /// Copies a finished local file in as `folder/name`; returns the object's URL.
    public func keep(_ path: String, folder: String, name: String) async throws(SluiceError) -> String {
        let url = self.url + folder + "/" + name
        guard let key = key(url) else { throw SluiceError(.invalidArgument, "storage: '\(name)' is not a name a file can be kept under") }
        try await source.store.upload(key, from: path, contentType: nil)
        return url
    }

    /// The object `url` names, downloaded into `dir` (named like it) with its SHA-256.
    public func fetch(_ url: String, into dir: String) async throws(SluiceError) -> Source.LocalFile {
        guard let key = key(url) else { throw SluiceError(.refused, "\(url) is not in the storage \(self.url)") }
        return try await source.fetch(key, into: dir, hashing: true)
    }

    /// Bytes `range` of the object `url` names, written to `path` (a chunk of an upload), 8 MiB
    /// at a time.
    public func fetch(_ url: String, range: Range<Int64>, to path: String) async throws(SluiceError) {
        guard let key = key(url) else { throw SluiceError(.refused, "\(url) is not in the storage \(self.url)") }
        try? FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        guard FileManager.default.createFile(atPath: path, contents: nil), let out = FileHandle(forWritingAtPath: path) else {
            throw SluiceError(.io, "cannot write \(path)")
        }
        defer { try? out.close() }
        var at = range.lowerBound
        while at < range.upperBound {
            let end = min(range.upperBound, at + (8 << 20))
            let bytes = try await source.store.get(key, range: at..<end, ifMatch: nil)
            guard Int64(bytes.count) == end - at else {
                throw SluiceError(.io, "\(url): asked for bytes \(at)..<\(end), got \(bytes.count)")
            }
            do { try out.write(contentsOf: bytes) } catch { throw SluiceError(.io, "cannot write \(path): \(error.localizedDescription)") }
            at = end
        }
    }

    /// The whole object `url` names (a small one: an export batch).
    public func bytes(_ url: String) async throws(SluiceError) -> [UInt8] {
        guard let key = key(url) else { throw SluiceError(.refused, "\(url) is not in the storage \(self.url)") }
        return try await source.store.get(key, range: nil, ifMatch: nil)
    }

    /// Every object kept under `folder`, by URL.
    public func objects(in folder: String) async throws(SluiceError) -> [(url: String, info: ObjectInfo)] {
        guard let prefix = key(self.url + folder + "/") else { return [] }
        return try await source.store.listAll(prefix: prefix).map { (self.url + folder + "/" + $0.key.dropFirst(prefix.count), $0) }
    }

    /// Removes the object `url` names (gone already is fine).
    public func remove(_ url: String) async throws(SluiceError) {
        guard let key = key(url) else { return }
        do {
            try await source.store.delete(key)
        } catch where error.code == .notFound {
            return
        }
    }
}
