public import SluiceCore
public import Foundation
import Crypto

/// One object (or file): its key relative to the store, size, entity tag and modification time.
public struct ObjectInfo: Sendable, Equatable, Codable {
    public var key: String
    public var size: Int64
    /// S3's ETag without quotes; for files, size and modification time in nanoseconds.
    public var etag: String
    public var lastModified: Date

    public init(key: String, size: Int64, etag: String, lastModified: Date) {
        self.key = key
        self.size = size
        self.etag = etag
        self.lastModified = lastModified
    }
}

extension ObjectInfo {
    /// What an object store's HTTP status means to callers: gone, changed (a failed
    /// precondition), refused, or an I/O failure.
    static func code(forStatus status: Int) -> SluiceError.Code {
        switch status {
        case 404: .notFound
        case 412: .aborted
        case 401, 403: .refused
        default: .io
        }
    }

    /// The text of such an answer: a failed precondition said plainly, a refusal with what to check.
    static func explain(_ status: Int, _ described: String, access: String) -> String {
        if status == 412 { return "changed since it was listed (precondition failed)" }
        return status == 401 || status == 403 ? described + " (access denied: \(access))" : described
    }
}

/// A page of a listing: objects in key order, and where the next page starts.
public struct ObjectPage: Sendable {
    public var objects: [ObjectInfo]
    public var continuation: String?
}

/// Where files live: a local folder, an HTTP(S) server, an S3-compatible bucket. Keys are
/// `/`-separated paths relative to the store's root. Everything streams.
public protocol ObjectStore: Sendable {
    /// For messages: `s3://bucket`, `/data/in`, `https://host`.
    var displayName: String { get }
    /// One page of the objects whose key starts with `prefix`, after `continuation`.
    func list(prefix: String, continuation: String?, limit: Int) async throws(SluiceError) -> ObjectPage
    /// The same, where a store that filters by time on the server (Drive) may leave out
    /// objects not newer than `newerThan`. Callers still filter: others list everything.
    func list(prefix: String, continuation: String?, limit: Int, newerThan: Date?) async throws(SluiceError) -> ObjectPage
    /// The object's metadata, or nil if it does not exist.
    func head(_ key: String) async throws(SluiceError) -> ObjectInfo?
    /// Bytes `range` (all when nil) of an object; fails if its etag is no longer `ifMatch`.
    func get(_ key: String, range: Range<Int64>?, ifMatch: String?) async throws(SluiceError) -> [UInt8]
    /// Streams an object into a local file (fsynced); fails with `.aborted` if the object
    /// changed (`ifMatch`) or changes while it is read. Returns what was read and, when
    /// `hashing`, its SHA-256 (a watch batch has no use for it: 1.3% of a watch run's CPU).
    func download(_ key: String, to path: String, ifMatch: String?, hashing: Bool) async throws(SluiceError) -> (info: ObjectInfo, sha256: String?)
    /// Writes an object from bytes. Returns its etag.
    @discardableResult
    func put(_ key: String, bytes: [UInt8], contentType: String?) async throws(SluiceError) -> String
    /// Writes an object from a local file, in parts when large. Returns its etag.
    @discardableResult
    func upload(_ key: String, from path: String, contentType: String?) async throws(SluiceError) -> String
    /// Writes an object from a local file the caller will never change again (a fetched,
    /// fsynced download): a store may keep the file itself instead of a copy. Returns its etag.
    @discardableResult
    func adopt(_ key: String, file path: String) async throws(SluiceError) -> String
    /// Copies an object inside the store, failing with `.aborted` if its etag is no longer `ifMatch`.
    func copy(from: String, to: String, ifMatch: String?) async throws(SluiceError)
    func delete(_ key: String) async throws(SluiceError)
}

/// A store that can create an object only if its key is free, atomically: what a Delta
/// commit (one writer wins each version) needs.
public protocol ExclusiveCreate: ObjectStore {
    /// Writes an object only if no object has its key: false when one does. A retried
    /// request that finds its own earlier write counts as written.
    func putIfAbsent(_ key: String, bytes: [UInt8]) async throws(SluiceError) -> Bool
}

extension ObjectStore {
    /// Downloads an object and returns its SHA-256 (see ``download(_:to:ifMatch:hashing:)``).
    public func download(_ key: String, to path: String, ifMatch: String?) async throws(SluiceError) -> (info: ObjectInfo, sha256: String) {
        let got = try await download(key, to: path, ifMatch: ifMatch, hashing: true)
        return (got.info, got.sha256 ?? "")
    }
}

extension ObjectStore {
    /// Most stores copy: ``upload(_:from:contentType:)``.
    @discardableResult
    public func adopt(_ key: String, file path: String) async throws(SluiceError) -> String {
        try await upload(key, from: path, contentType: nil)
    }

    public func list(prefix: String, continuation: String?, limit: Int, newerThan: Date?) async throws(SluiceError) -> ObjectPage {
        try await list(prefix: prefix, continuation: continuation, limit: limit)
    }

    /// Every object under `prefix`, page by page (newer than `newerThan` when the store can tell).
    public func listAll(prefix: String, limit: Int = 1000, newerThan: Date? = nil) async throws(SluiceError) -> [ObjectInfo] {
        var out: [ObjectInfo] = []
        var token: String? = nil
        repeat {
            let page = try await list(prefix: prefix, continuation: token, limit: limit, newerThan: newerThan)
            out += page.objects
            token = page.continuation
        } while token != nil
        return out
    }
}

/// A location a user names: `s3://bucket/prefix`, `gs://bucket/prefix`, `gdrive://FOLDER_ID/`,
/// `ftp://host/path`, `https://host/path`, or a local folder/file.
public struct StorageLocation: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        case s3(bucket: String), gcs(bucket: String), gdrive(folder: String, options: DriveOptions)
        case http(base: String), local(root: String), ftp(server: String)
        /// Remote stores whose prefixes can be listed.
        public var isListable: Bool {
            switch self {
            case .s3, .gcs, .gdrive, .ftp: true
            case .http, .local: false
            }
        }
        /// Stores where an object appears whole (an upload is atomic), so a watch takes a new
        /// one on the poll that first lists it; folders and FTP wait to see it unchanged.
        public var isAtomic: Bool {
            switch self {
            case .s3, .gcs, .gdrive: true
            case .http, .local, .ftp: false
            }
        }
    }

    /// The schemes of remote stores.
    public static let remoteSchemes = ["s3://", "gs://", "gdrive://", "ftp://", "http://", "https://"]
    public var kind: Kind
    /// The key (for a file) or prefix (for a folder) inside the store.
    public var key: String

    public init(_ text: String) throws(SluiceError) {
        if text.hasPrefix("s3://") {
            let rest = text.dropFirst(5)
            let bucket = String(rest.prefix { $0 != "/" })
            guard S3ObjectStore.isValidBucket(bucket) else { throw SluiceError(.invalidArgument, "'\(bucket)' is not a valid S3 bucket name (in \(text))") }
            kind = .s3(bucket: bucket)
            key = String(rest.dropFirst(bucket.count).drop { $0 == "/" })
        } else if text.hasPrefix("gs://") {
            let rest = text.dropFirst(5)
            let bucket = String(rest.prefix { $0 != "/" })
            guard GCSObjectStore.isValidBucket(bucket) else { throw SluiceError(.invalidArgument, "'\(bucket)' is not a valid Cloud Storage bucket name (in \(text))") }
            kind = .gcs(bucket: bucket)
            key = String(rest.dropFirst(bucket.count).drop { $0 == "/" })
        } else if text.hasPrefix("gdrive://") {
            // gdrive://FOLDER_ID/[name or pattern][?by=modified&drive=SHARED_DRIVE_ID]
            var rest = Substring(text.dropFirst(9))
            var options = DriveOptions()
            if let q = rest.firstIndex(of: "?") {
                for pair in rest[rest.index(after: q)...].split(separator: "&") {
                    let kv = pair.split(separator: "=", maxSplits: 1).map(String.init)
                    switch (kv.first ?? "", kv.count == 2 ? kv[1] : "") {
                    case ("by", "modified"), ("by", "modifiedTime"): options.byModified = true
                    case ("by", "created"), ("by", "createdTime"): options.byModified = false
                    case ("drive", let d) where !d.isEmpty: options.sharedDrive = d
                    case ("recursive", "true"): options.recursive = true
                    case ("recursive", "false"): options.recursive = false
                    default: throw SluiceError(.invalidArgument, "'\(pair)' in \(text): a Drive location takes ?by=created|modified, ?drive=SHARED_DRIVE_ID and ?recursive=true")
                    }
                }
                rest = rest[..<q]
            }
            let folder = String(rest.prefix { $0 != "/" })
            guard DriveObjectStore.isValidID(folder) else { throw SluiceError(.invalidArgument, "'\(folder)' is not a Drive folder id (in \(text)): write gdrive://FOLDER_ID/") }
            kind = .gdrive(folder: folder, options: options)
            key = String(rest.dropFirst(folder.count).drop { $0 == "/" }).removingPercentEncoding ?? ""
        } else if text.hasPrefix("ftp://") {
            guard let u = URLComponents(string: text), let host = u.host else { throw SluiceError(.invalidArgument, "'\(text)' is not an FTP URL") }
            var server = u
            server.path = ""
            kind = .ftp(server: server.string ?? "ftp://\(host)")
            key = String(u.path.drop { $0 == "/" })
        } else if text.hasPrefix("http://") || text.hasPrefix("https://") {
            guard let u = URLComponents(string: text), let host = u.host, let scheme = u.scheme else { throw SluiceError(.invalidArgument, "'\(text)' is not a URL") }
            kind = .http(base: "\(scheme)://\(host)\(u.port.map { ":\($0)" } ?? "")")
            // Kept as written (percent-encoded): the key is requested as it came.
            key = String(u.percentEncodedPath.drop { $0 == "/" }) + (u.percentEncodedQuery.map { "?" + $0 } ?? "")
        } else {
            let path = text.hasPrefix("file://") ? String(text.dropFirst(7)) : text
            let full = ((path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path) as NSString).standardizingPath
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: full, isDirectory: &isDir), isDir.boolValue {
                kind = .local(root: full)
                key = ""
            } else {
                kind = .local(root: (full as NSString).deletingLastPathComponent)
                key = (full as NSString).lastPathComponent
            }
        }
    }

    /// The store this location is in; `maxBytes` caps what an HTTP download may stream.
    /// Google's stores take their settings from the environment (``GoogleConfig/fromEnvironment(_:)``).
    public func store(config: S3Config = .fromEnvironment(), google: GoogleConfig = .fromEnvironment(), maxBytes: Int64? = nil) throws(SluiceError) -> any ObjectStore {
        switch kind {
        case .s3(let bucket): return try S3ObjectStore(bucket: bucket, config: config)
        case .gcs(let bucket): return try GCSObjectStore(bucket: bucket, config: google)
        case .gdrive(let folder, let options): return try DriveObjectStore(folder: folder, options: options, config: google)
        case .http(let base): return HTTPObjectStore(base: base, maxBytes: maxBytes)
        case .local(let root): return LocalObjectStore(root: root)
        case .ftp(let server): return try FTPObjectStore(url: server + "/")
        }
    }
}

/// Where downloads go, and what is known of a file once it is local.
public enum Download {
    /// Creates (or truncates) a file for writing, and its folder.
    public static func openFile(_ path: String) throws(SluiceError) -> FileHandle {
        let dir = (path as NSString).deletingLastPathComponent
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        guard FileManager.default.createFile(atPath: path, contents: nil), let h = FileHandle(forWritingAtPath: path) else {
            throw SluiceError(.io, "cannot create", at: SourceLocation(file: path))
        }
        return h
    }

    /// SHA-256 (hex) and size of a local file, read in 1 MiB chunks.
    public static func sha256(ofFile path: String) throws(SluiceError) -> (String, Int64) {
        guard let h = FileHandle(forReadingAtPath: path) else {
            throw SluiceError(.notFound, "cannot open", at: SourceLocation(file: path))
        }
        defer { try? h.close() }  // read-only handle: nothing to lose on close
        var hasher = SHA256()
        var size: Int64 = 0
        while true {
            let chunk: Data
            do { chunk = try h.read(upToCount: 1 << 20) ?? Data() } catch {
                throw SluiceError(.io, "read failed: \(error.localizedDescription)", at: SourceLocation(file: path))
            }
            if chunk.isEmpty { break }
            hasher.update(data: chunk)
            size += Int64(chunk.count)
        }
        return (SigV4Signer.hex(hasher.finalize()), size)
    }
}
