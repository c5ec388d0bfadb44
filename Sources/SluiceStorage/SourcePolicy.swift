public import SluiceCore
public import Foundation

/// A job's source, once checked.
public enum SourceRef: Sendable, Equatable {
    /// A file uploaded to this server (`upload:<id>`).
    case upload(id: String)
    /// A local file under one of the configured roots (`file:///path`).
    case file(path: String)
    /// A file fetched over HTTP(S) from an allowed host.
    case http(URL)
    /// An object in an allowed S3 bucket (`s3://bucket/key`).
    case s3(bucket: String, key: String)
    /// An object in an allowed Cloud Storage bucket (`gs://bucket/key`).
    case gcs(bucket: String, key: String)
}

/// Which sources a job may name. Checked when a job is submitted (no I/O) and again when
/// a worker fetches it (symlinks resolved, host names resolved to addresses).
public struct SourcePolicy: Sendable {
    public var uploadDir: String
    public var fileRoots: [String]
    /// Allowed hosts: exact names, or `*.example.com` for any subdomain.
    public var httpAllowlist: [String]
    /// Allow link-local and cloud-metadata addresses (169.254.0.0/16, fe80::/10, fd00:ec2::254).
    public var allowLinkLocal: Bool
    /// Buckets `s3://` sources may name (the server's credentials could read others).
    public var s3Buckets: [String] = []
    /// Buckets `gs://` sources may name.
    public var gcsBuckets: [String] = []
    /// Where uploads are kept when processes run on several hosts (nil: the upload folder).
    public var storage: SharedStorage?

    public init(uploadDir: String, fileRoots: [String] = [], httpAllowlist: [String] = [], allowLinkLocal: Bool = false) {
        self.uploadDir = uploadDir
        // Roots are compared with absolute paths: a relative root is taken from the working directory.
        let cwd = FileManager.default.currentDirectoryPath
        self.fileRoots = fileRoots.map { (($0.hasPrefix("/") ? $0 : (cwd as NSString).appendingPathComponent($0)) as NSString).standardizingPath }
        self.httpAllowlist = httpAllowlist.map { $0.lowercased() }
        self.allowLinkLocal = allowLinkLocal
    }

    static func refuse(_ why: String) -> SluiceError { SluiceError(.refused, why) }

    /// Whether `id` could be an upload id we generated (so it cannot name a path).
    public static func isUploadID(_ id: String) -> Bool {
        !id.isEmpty && id.utf8.count <= 64 && id.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 122) || $0 == UInt8(ascii: "-") }
    }

    /// Checks a source named in a request, without touching the network or the disk.
    public func validate(_ source: String) throws(SluiceError) -> SourceRef {
        if source.hasPrefix("upload:") {
            let id = String(source.dropFirst("upload:".count))
            guard Self.isUploadID(id) else { throw Self.refuse("'\(SourceLocation.excerpt(source))' is not an upload id") }
            return .upload(id: id)
        }
        for (scheme, allowed, setting) in [("s3", s3Buckets, "s3_buckets"), ("gs", gcsBuckets, "gcs_buckets")] where source.hasPrefix(scheme + "://") {
            let rest = source.dropFirst(scheme.count + 3)
            let bucket = String(rest.prefix { $0 != "/" })
            let key = String(rest.dropFirst(bucket.count).drop { $0 == "/" })
            guard !key.isEmpty, !key.hasSuffix("/") else { throw Self.refuse("an \(scheme):// source names one object (\(scheme)://bucket/key)") }
            guard allowed.contains(bucket) else {
                throw Self.refuse(allowed.isEmpty ? "\(scheme == "s3" ? "S3" : "Cloud Storage") sources are not allowed (no server.\(setting) configured)" : "bucket '\(bucket)' is not allowed")
            }
            return scheme == "s3" ? .s3(bucket: bucket, key: key) : .gcs(bucket: bucket, key: key)
        }
        guard let url = URL(string: source), let scheme = url.scheme?.lowercased() else {
            throw Self.refuse("source is not a URL; use upload:<id>, file:///path, http(s)://host/path, s3://bucket/key, gs://bucket/key")
        }
        switch scheme {
        case "file":
            guard url.host == nil || url.host == "" || url.host == "localhost" else { throw Self.refuse("file URLs must name a local path") }
            let path = (url.path as NSString).standardizingPath
            guard let root = root(containing: path) else {
                throw Self.refuse(fileRoots.isEmpty ? "file URLs are not allowed (no file_roots configured)"
                                                    : "file '\(path)' is not under an allowed root")
            }
            _ = root
            return .file(path: path)
        case "http", "https":
            guard url.user == nil && url.password == nil else {
                throw Self.refuse("credentials in URLs are not accepted (they would be stored with the job)")
            }
            guard let host = url.host?.lowercased(), !host.isEmpty else { throw Self.refuse("the URL has no host") }
            guard hostAllowed(host) else {
                throw Self.refuse(httpAllowlist.isEmpty ? "HTTP sources are not allowed (no http_allowlist configured)"
                                                        : "host '\(host)' is not on the allowlist")
            }
            if let ip = IPAddress(host), !allowLinkLocal, ip.isLinkLocalOrMetadata {
                throw Self.refuse("address \(host) is link-local or a metadata service")
            }
            return .http(url)
        default:
            throw Self.refuse("unsupported URL scheme '\(scheme)'")
        }
    }

    func root(containing path: String) -> String? {
        fileRoots.first { path == $0 || path.hasPrefix($0.hasSuffix("/") ? $0 : $0 + "/") }
    }

    func hostAllowed(_ host: String) -> Bool {
        httpAllowlist.contains { entry in
            if entry.hasPrefix("*.") { return host.hasSuffix(String(entry.dropFirst(1))) }
            return entry == host
        }
    }

    /// At fetch time: the real path of a file source (symlinks resolved) must still be under a root.
    package func checkRealPath(_ path: String) throws(SluiceError) -> String {
        guard let real = realpath(path, nil) else {
            throw SluiceError(.notFound, "cannot open: \(String(cString: strerror(errno)))", at: SourceLocation(file: path))
        }
        defer { free(real) }
        let resolved = String(cString: real)
        guard root(containing: resolved) != nil else { throw Self.refuse("file '\(path)' resolves outside the allowed roots") }
        return resolved
    }

    /// At fetch time: every address the host resolves to must be allowed.
    package func checkResolved(host: String) throws(SluiceError) {
        if allowLinkLocal { return }
        for ip in IPAddress.resolve(host) where ip.isLinkLocalOrMetadata {
            throw Self.refuse("host '\(host)' resolves to a link-local or metadata address")
        }
    }
}

/// An IPv4 or IPv6 address, for SSRF checks.
struct IPAddress: Equatable {
    var bytes: [UInt8]

    init?(_ text: String) {
        var t = text
        if t.hasPrefix("[") && t.hasSuffix("]") { t = String(t.dropFirst().dropLast()) }
        var v4 = in_addr()
        if inet_pton(AF_INET, t, &v4) == 1 {
            bytes = withUnsafeBytes(of: &v4) { Array($0) }
            return
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, t, &v6) == 1 {
            bytes = withUnsafeBytes(of: &v6) { Array($0) }
            return
        }
        return nil
    }

    init(bytes: [UInt8]) { self.bytes = bytes }

    var isLinkLocalOrMetadata: Bool {
        if bytes.count == 4 { return bytes[0] == 169 && bytes[1] == 254 }  // includes 169.254.169.254
        if bytes.count == 16 {
            if bytes[0] == 0xFE && bytes[1] & 0xC0 == 0x80 { return true }  // fe80::/10
            if bytes == [0xFD, 0x00, 0x0E, 0xC2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, 0x54] { return true }  // fd00:ec2::254
            // IPv4-mapped ::ffff:a.b.c.d
            if bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xFF && bytes[11] == 0xFF {
                return IPAddress(bytes: Array(bytes[12..<16])).isLinkLocalOrMetadata
            }
        }
        return false
    }

    /// Every address `host` resolves to (empty when it does not resolve).
    static func resolve(_ host: String) -> [IPAddress] {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var res: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, nil, &hints, &res) == 0 else { return [] }
        defer { freeaddrinfo(res) }
        var out: [IPAddress] = []
        var p = res
        while let ai = p {
            if ai.pointee.ai_family == AF_INET, let sa = ai.pointee.ai_addr {
                sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { sin in
                    var a = sin.pointee.sin_addr
                    out.append(IPAddress(bytes: withUnsafeBytes(of: &a) { Array($0) }))
                }
            } else if ai.pointee.ai_family == AF_INET6, let sa = ai.pointee.ai_addr {
                sa.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { sin in
                    var a = sin.pointee.sin6_addr
                    out.append(IPAddress(bytes: withUnsafeBytes(of: &a) { Array($0) }))
                }
            }
            p = ai.pointee.ai_next
        }
        return out
    }
}
