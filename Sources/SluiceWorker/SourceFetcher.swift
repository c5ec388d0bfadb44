public import SluiceCore
public import SluiceQueue
public import SluiceStorage
public import SluiceConfig
public import Foundation
import Crypto
import AsyncHTTPClient
import NIOCore
import NIOHTTP1

/// A source made local: a file path and its SHA-256.
public struct LocalSource: Sendable {
    public var path: String
    public var sha256: String
    public var size: Int64
    /// True when the file is a download the job owns (deleted after the job).
    public var temporary: Bool
}

/// Turns a job's source into a local file: uploads are already on disk, files under a
/// root are read in place, HTTP(S) sources are streamed to the job's folder. The SHA-256
/// is computed on the way (and taken from the upload record for uploads).
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
              let u = try? await driver.upload(id: id), let path = inUploadFolder(u) else { return }
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

    public func fetch(_ source: String, into dir: String) async throws(SluiceError) -> LocalSource {
        switch try policy.validate(source) {
        case .upload(let id):
            guard let u = try await driver.upload(id: id) else { throw SluiceError(.notFound, "upload '\(id)' does not exist") }
            guard inUploadFolder(u) != nil else { throw SluiceError(.refused, "upload '\(id)' is not in the upload folder") }
            return LocalSource(path: u.path, sha256: u.sha256, size: u.size, temporary: false)
        case .file(let path):
            let real = try policy.checkRealPath(path)
            let (sha, size) = try Self.sha256(ofFile: real)
            return LocalSource(path: real, sha256: sha, size: size, temporary: false)
        case .http(let url):
            return try await download(url, into: dir)
        case .s3(let bucket, let key):
            let store = try S3ObjectStore(bucket: bucket, config: s3)
            guard let head = try await store.head(key) else { throw SluiceError(.notFound, "s3://\(bucket)/\(key) does not exist") }
            if head.size > maxDownloadBytes { throw SluiceError(.refused, "s3://\(bucket)/\(key) is larger than \(maxDownloadBytes) bytes") }
            // Named like the object, so its extension still tells the format.
            let path = (dir as NSString).appendingPathComponent((key as NSString).lastPathComponent)
            let (info, sha) = try await store.download(key, to: path, ifMatch: head.etag)
            return LocalSource(path: path, sha256: sha, size: info.size, temporary: true)
        }
    }

    /// SHA-256 and size of a file, read in 1 MiB chunks.
    public static func sha256(ofFile path: String) throws(SluiceError) -> (String, Int64) {
        try Download.sha256(ofFile: path)
    }

    /// The download client: a refused or timed-out connection fails the attempt at once
    /// (the job's own retry policy backs off and tries again), reads time out after 2 minutes
    /// of silence. Lives as long as the process, like `HTTPClient.shared`.
    static let client: HTTPClient = {
        var config = HTTPClient.Configuration()
        config.timeout = .init(connect: .seconds(10), read: .seconds(120))
        config.connectionPool.retryConnectionEstablishment = false
        config.redirectConfiguration = .disallow  // a redirect could leave the allowlist
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: config)
    }()

    static func hex<D: Sequence>(_ digest: D) -> String where D.Element == UInt8 {
        digest.map { String(format: "%02x", $0) }.joined()
    }

    func download(_ url: URL, into dir: String) async throws(SluiceError) -> LocalSource {
        let host = url.host ?? ""
        try policy.checkResolved(host: host)
        do {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        } catch {
            throw SluiceError(.io, "cannot create '\(dir)': \(error.localizedDescription)")
        }
        let path = (dir as NSString).appendingPathComponent("download")
        guard FileManager.default.createFile(atPath: path, contents: nil), let out = FileHandle(forWritingAtPath: path) else {
            throw SluiceError(.io, "cannot create '\(path)'")
        }
        defer { try? out.close() }  // written data is synced by the explicit close below
        let shown = "\(url.scheme ?? "http")://\(host)\(url.path)"
        do {
            var request = HTTPClientRequest(url: url.absoluteString)
            request.method = .GET
            let response = try await Self.client.execute(request, timeout: .seconds(3600))
            switch response.status.code {
            case 200..<300: break
            case 408, 429, 500..<600:
                throw SluiceError(.unavailable, "GET \(shown) answered \(response.status.code)")
            default:
                throw SluiceError(.refused, "GET \(shown) answered \(response.status.code)")
            }
            var hasher = SHA256()
            var size: Int64 = 0
            for try await buffer in response.body {
                size += Int64(buffer.readableBytes)
                if size > maxDownloadBytes { throw SluiceError(.refused, "GET \(shown) is larger than \(maxDownloadBytes) bytes") }
                buffer.withUnsafeReadableBytes { hasher.update(bufferPointer: $0) }
                try out.write(contentsOf: Data(buffer.readableBytesView))
            }
            try out.synchronize()
            return LocalSource(path: path, sha256: Self.hex(hasher.finalize()), size: size, temporary: true)
        } catch let e as SluiceError {
            throw e
        } catch {
            throw SluiceError(.unavailable, "GET \(shown) failed: \(error)")
        }
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
