public import SluiceCore
public import SluiceQueue
public import SluiceStorage
public import SluiceConfig
public import Foundation

/// A source made local: a file path and its SHA-256.
public struct LocalSource: Sendable {
    public var path: String
    public var sha256: String
    public var size: Int64
    /// True when the file is a download the job owns (deleted after the job).
    public var temporary: Bool
    /// A whole copy of an upload kept in the shared storage: chunk jobs fetch their bytes from there.
    public var shared = false
    /// The file holds only the bytes of the range asked for (a chunk's), not the whole source.
    public var ranged = false
}

/// Turns a job's source into a local file: uploads are already on disk, files under a
/// root are read in place, HTTP(S) and S3 sources are fetched into the job's folder through
/// ``Source`` (after the policy allowed them). The SHA-256 is computed on the way (and taken
/// from the upload record for uploads).
public struct SourceFetcher: Sendable {
    public let policy: SourcePolicy
    public let driver: any UploadStore
    /// Largest download, in bytes.
    public var maxDownloadBytes: Int64 = 8 << 30
    /// How `s3://` sources are reached (endpoint, region, credentials).
    public var s3: S3Config = .fromEnvironment()

    public init(policy: SourcePolicy, driver: any UploadStore) {
        self.policy = policy
        self.driver = driver
    }

    /// Removes the uploaded file of a finished job that asked for it (``JobSpec/removeSource``),
    /// and its folder when that is a batch folder left empty. Best effort: what stays is disk
    /// space, not state.
    func removeScratchUpload(of job: Job) async {
        guard job.spec.removeSource == true, job.spec.parent == nil, case .upload(let id)? = try? policy.validate(job.spec.source),
              let u = try? await driver.upload(id: id) else { return }
        if let storage = policy.storage, storage.holds(u.path) {
            try? await storage.remove(u.path)
            return
        }
        guard let path = inUploadFolder(u) else { return }
        try? FileManager.default.removeItem(atPath: path)
        let folder = (path as NSString).deletingLastPathComponent
        if folder != (policy.uploadDir as NSString).standardizingPath, (try? FileManager.default.contentsOfDirectory(atPath: folder))?.isEmpty == true {
            try? FileManager.default.removeItem(atPath: folder)
        }
    }

    /// The upload's path when it lies inside the upload folder (nil: a record pointing elsewhere).
    func inUploadFolder(_ u: Upload) -> String? {
        let root = (policy.uploadDir as NSString).standardizingPath
        let path = (u.path as NSString).standardizingPath
        return path.hasPrefix(root + "/") && !u.path.contains("/../") ? path : nil
    }

    /// `range`: only those bytes are needed (a chunk job), where the source can serve them alone.
    public func fetch(_ source: String, into dir: String, range: Range<Int64>? = nil) async throws(SluiceError) -> LocalSource {
        switch try policy.validate(source) {
        case .upload(let id):
            guard let u = try await driver.upload(id: id) else { throw SluiceError(.notFound, "upload '\(id)' does not exist") }
            if let storage = policy.storage, storage.holds(u.path) {
                // Kept in the shared storage: fetched (a chunk, only its bytes) and checked against its record.
                if let range {
                    let path = (dir as NSString).appendingPathComponent("chunk-" + (u.path as NSString).lastPathComponent)
                    try await storage.fetch(u.path, range: range, to: path)
                    return LocalSource(path: path, sha256: u.sha256, size: Int64(range.count), temporary: true, ranged: true)
                }
                let f = try await storage.fetch(u.path, into: dir)
                guard f.sha256 == u.sha256, f.size == u.size else {
                    try? FileManager.default.removeItem(atPath: f.path)
                    throw SluiceError(.io, "upload '\(id)' in \(u.path) is not what was uploaded (\(f.size) bytes, SHA-256 \(f.sha256 ?? "?"); expected \(u.size), \(u.sha256))")
                }
                return LocalSource(path: f.path, sha256: u.sha256, size: u.size, temporary: true, shared: true)
            }
            guard inUploadFolder(u) != nil else { throw SluiceError(.refused, "upload '\(id)' is not in the upload folder") }
            return LocalSource(path: u.path, sha256: u.sha256, size: u.size, temporary: false)
        case .file(let path):
            let real = try policy.checkRealPath(path)
            let (sha, size) = try Download.sha256(ofFile: real)
            return LocalSource(path: real, sha256: sha, size: size, temporary: false)
        case .http(let url):
            try policy.checkResolved(host: url.host ?? "")
            return try await download(Source(url.absoluteString, s3: s3, maxBytes: maxDownloadBytes), into: dir)
        case .s3(let bucket, let key):
            return try await download(Source("s3://\(bucket)/\(key)", s3: s3, maxBytes: maxDownloadBytes), into: dir)
        case .gcs(let bucket, let key):
            return try await download(Source("gs://\(bucket)/\(key)", s3: s3, maxBytes: maxDownloadBytes), into: dir)
        }
    }

    /// Downloads the one object `source` names into `dir`, hashing it on the way, checked
    /// against the version its HEAD saw (buckets) and the size limit.
    func download(_ source: Source, into dir: String) async throws(SluiceError) -> LocalSource {
        var etag: String? = nil
        if source.location.kind.isAtomic {
            guard let head = try await source.store.head(source.location.key) else { throw SluiceError(.notFound, "\(source.text) does not exist") }
            if head.size > maxDownloadBytes { throw SluiceError(.refused, "\(source.text) is larger than \(maxDownloadBytes) bytes") }
            etag = head.etag
        }
        let file = try await source.fetch(etag: etag, into: dir, hashing: true)
        return LocalSource(path: file.path, sha256: file.sha256 ?? "", size: file.size, temporary: true)
    }
}

extension S3Config {
    /// The AWS environment with `sluice.yml`'s `s3:` settings over it.
    public static func from(_ settings: S3Settings, environment: [String: String] = ProcessInfo.processInfo.environment) -> S3Config {
        var c = S3Config.fromEnvironment(environment)
        if let e = settings.endpoint { c.endpoint = e }
        if let r = settings.region { c.region = r }
        if let p = settings.pathStyle { c.pathStyle = p }
        return c
    }
}
