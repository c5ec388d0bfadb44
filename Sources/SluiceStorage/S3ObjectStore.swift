public import SluiceCore
public import Foundation
import Crypto
import AsyncHTTPClient
import NIOCore
import NIOHTTP1

/// How to reach S3 or an S3-compatible server (MinIO, moto, Ceph...).
public struct S3Config: Sendable, Equatable {
    public var region = "us-east-1"
    /// `http://127.0.0.1:9000`; nil means AWS (`https://s3.<region>.amazonaws.com`).
    public var endpoint: String?
    /// Path-style URLs (`endpoint/bucket/key`); nil: path style with a custom endpoint,
    /// virtual-hosted (`bucket.endpoint/key`) on AWS.
    public var pathStyle: Bool?
    public var credentials: AWSCredentials?
    /// Objects from this size up are uploaded in parts of `partSize`.
    public var multipartThreshold: Int64 = 16 << 20
    public var partSize: Int64 = 8 << 20

    public init() {}

    /// The standard AWS variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `AWS_SESSION_TOKEN`, `AWS_REGION`/`AWS_DEFAULT_REGION`, `AWS_ENDPOINT_URL_S3`/
    /// `AWS_ENDPOINT_URL`, `AWS_PROFILE`), then `~/.aws/credentials` and `~/.aws/config`.
    public static func fromEnvironment(_ env: [String: String] = ProcessInfo.processInfo.environment) -> S3Config {
        var c = S3Config()
        let home = env["HOME"] ?? NSHomeDirectory()
        let profile = env["AWS_PROFILE"] ?? "default"
        let files = (ini(env["AWS_SHARED_CREDENTIALS_FILE"] ?? home + "/.aws/credentials")[profile] ?? [:],
                     ini(env["AWS_CONFIG_FILE"] ?? home + "/.aws/config")[profile == "default" ? "default" : "profile " + profile] ?? [:])
        if let id = env["AWS_ACCESS_KEY_ID"], let secret = env["AWS_SECRET_ACCESS_KEY"] {
            c.credentials = AWSCredentials(accessKeyID: id, secretAccessKey: secret, sessionToken: env["AWS_SESSION_TOKEN"])
        } else if let id = files.0["aws_access_key_id"], let secret = files.0["aws_secret_access_key"] {
            c.credentials = AWSCredentials(accessKeyID: id, secretAccessKey: secret, sessionToken: files.0["aws_session_token"])
        }
        c.region = env["AWS_REGION"] ?? env["AWS_DEFAULT_REGION"] ?? files.1["region"] ?? "us-east-1"
        c.endpoint = env["AWS_ENDPOINT_URL_S3"] ?? env["AWS_ENDPOINT_URL"] ?? files.1["endpoint_url"]
        if let p = env["SLUICE_S3_PATH_STYLE"] { c.pathStyle = ["1", "true", "yes"].contains(p.lowercased()) }
        return c
    }

    /// Sections of an INI file (`[name]`, `key = value`); empty when unreadable.
    static func ini(_ path: String) -> [String: [String: String]] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [:] }
        var out: [String: [String: String]] = [:]
        var section = ""
        for raw in text.split(whereSeparator: \.isNewline) {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
            if line.hasPrefix("[") && line.hasSuffix("]") { section = String(line.dropFirst().dropLast()).trimmingCharacters(in: .whitespaces); continue }
            guard let eq = line.firstIndex(of: "=") else { continue }
            out[section, default: [:]][line[..<eq].trimmingCharacters(in: .whitespaces)] = line[line.index(after: eq)...].trimmingCharacters(in: .whitespaces)
        }
        return out
    }
}

/// An S3 bucket over HTTP, signed with SigV4: ListObjectsV2 with continuation tokens,
/// ranged and conditional GET, HEAD, PUT, multipart upload, server-side copy, DELETE.
/// Transient failures (5xx, 429, connection errors) are retried with backoff.
public struct S3ObjectStore: ExclusiveCreate {
    public let bucket: String
    public let config: S3Config
    let scheme: String
    let host: String
    let pathPrefix: String
    public var displayName: String { "s3://\(bucket)" }

    public init(bucket: String, config: S3Config) throws(SluiceError) {
        guard Self.isValidBucket(bucket) else { throw SluiceError(.invalidArgument, "'\(bucket)' is not a valid S3 bucket name") }
        self.bucket = bucket
        self.config = config
        let endpoint = config.endpoint ?? "https://s3.\(config.region).amazonaws.com"
        guard let u = URL(string: endpoint), let s = u.scheme, let h = u.host else { throw SluiceError(.invalidConfig, "S3 endpoint '\(endpoint)' is not a URL") }
        let pathStyle = config.pathStyle ?? (config.endpoint != nil) || bucket.contains(".")
        scheme = s
        let port = u.port.map { ":\($0)" } ?? ""
        host = pathStyle ? h + port : "\(bucket).\(h)\(port)"
        pathPrefix = pathStyle ? "/" + bucket : ""
    }

    /// 3–63 characters of lower-case letters, digits, `-` and `.`, starting and ending with a letter or digit.
    public static func isValidBucket(_ b: String) -> Bool {
        let bytes = Array(b.utf8)
        guard (3...63).contains(bytes.count) else { return false }
        func alnum(_ c: UInt8) -> Bool { (c >= 97 && c <= 122) || (c >= 48 && c <= 57) }
        return alnum(bytes.first!) && alnum(bytes.last!) && bytes.allSatisfy { alnum($0) || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: ".") }
    }

    static let client: HTTPClient = {
        var c = HTTPClient.Configuration()
        c.timeout = .init(connect: .seconds(10), read: .seconds(120))
        c.connectionPool.retryConnectionEstablishment = false
        c.redirectConfiguration = .disallow
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: c)
    }()

    func path(_ key: String) -> String { pathPrefix + "/" + SigV4Signer.encode(key, keepSlash: true) }

    /// A signed request (header auth, or anonymous without credentials).
    func request(_ method: HTTPMethod, key: String, query: [(String, String)] = [], headers extra: [(String, String)] = [],
                 body: [UInt8]? = nil, date: Date = Date()) -> HTTPClientRequest {
        let p = path(key)
        let q = SigV4Signer.canonicalQuery(query)
        var r = HTTPClientRequest(url: "\(scheme)://\(host)\(p)\(q.isEmpty ? "" : "?" + q)")
        r.method = method
        let payload = body.map { SigV4Signer.hex(SHA256.hash(data: $0)) } ?? SigV4Signer.emptyPayloadHash
        var headers = extra + [("host", host), ("x-amz-content-sha256", payload), ("x-amz-date", SigV4Signer.stamps(date).amzDate)]
        if let token = config.credentials?.sessionToken { headers.append(("x-amz-security-token", token)) }
        if let creds = config.credentials {
            let signer = SigV4Signer(credentials: creds, region: config.region, service: "s3")
            headers.append(("Authorization", signer.authorization(method: method.rawValue, path: p, query: query, headers: headers, payloadHash: payload, date: date)))
        }
        for (k, v) in headers where k != "host" { r.headers.add(name: k, value: v) }
        r.headers.add(name: "Host", value: host)
        if let body { r.body = .bytes(ByteBuffer(bytes: body)) }
        return r
    }

    /// A presigned URL for `method` on `key`, valid `expires` seconds.
    public func presignedURL(_ method: String = "GET", key: String, expires: Int = 3600, date: Date = Date()) throws(SluiceError) -> String {
        guard let creds = config.credentials else { throw SluiceError(.invalidConfig, "presigning needs AWS credentials") }
        let signer = SigV4Signer(credentials: creds, region: config.region, service: "s3")
        let q = signer.presignedQuery(method: method, host: host, path: path(key), query: [], expires: expires, date: date)
        return "\(scheme)://\(host)\(path(key))?" + q.map { "\(SigV4Signer.encode($0.0, keepSlash: false))=\(SigV4Signer.encode($0.1, keepSlash: false))" }.joined(separator: "&")
    }

    struct Answer {
        var status: Int
        var headers: HTTPHeaders
        var body: [UInt8]
    }

    /// Sends with retries on transient failures; returns any answer that is not transient.
    func send(_ what: String, _ make: () -> HTTPClientRequest, attempts: Int = 4) async throws(SluiceError) -> Answer {
        var attempt = 0
        while true {
            attempt += 1
            var failure: SluiceError
            do {
                let response = try await Self.client.execute(make(), timeout: .seconds(300))
                var body = try await response.body.collect(upTo: 64 << 20)
                let answer = Answer(status: Int(response.status.code), headers: response.headers, body: body.readBytes(length: body.readableBytes) ?? [])
                if !(answer.status >= 500 || answer.status == 429 || answer.status == 408) { return answer }
                failure = SluiceError(.unavailable, "\(what): \(Self.describe(answer))")
            } catch {
                failure = SluiceError(.unavailable, "\(what) on \(displayName): \(error)")
            }
            if attempt >= attempts { throw failure }
            let delay = min(2.0, 0.2 * pow(2, Double(attempt - 1))) * Double.random(in: 0.5...1)
            try? await Task.sleep(nanoseconds: UInt64(delay * 1e9))
        }
    }

    /// `HTTP 404 NoSuchKey: The specified key does not exist.`
    static func describe(_ a: Answer) -> String {
        let xml = MiniXML(a.body)
        let code = xml.first("Error/Code"), message = xml.first("Error/Message")
        return "HTTP \(a.status)" + (code.map { " \($0)" } ?? "") + (message.map { ": \($0)" } ?? "")
    }

    func fail(_ what: String, _ a: Answer, key: String? = nil) -> SluiceError {
        SluiceError(ObjectInfo.code(forStatus: a.status), "\(what) \(displayName)/\(key ?? ""): "
                    + ObjectInfo.explain(a.status, Self.describe(a), access: "check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or ~/.aws/credentials, and the region"))
    }

    static func unquote(_ etag: String) -> String {
        etag.trimmingCharacters(in: CharacterSet(charactersIn: "\""))
    }

    /// Formatters are thread-safe for parsing in swift-corelibs-foundation.
    nonisolated(unsafe) static let isoFractional: ISO8601DateFormatter = {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f
    }()

    nonisolated(unsafe) static let isoPlain = ISO8601DateFormatter()

    static func date(_ s: String) -> Date {
        httpDate(s) ?? isoFractional.date(from: s) ?? isoPlain.date(from: s) ?? DateFormatter.http.date(from: s) ?? Date(timeIntervalSince1970: 0)
    }

    static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"].map { Array($0.utf8) }

    /// `Wed, 21 Oct 2015 07:28:00 GMT` (the IMF-fixdate every S3 response carries) read
    /// directly: the formatters were a sixth of a fetch's CPU in the watch bench. Nil for any
    /// other shape (the formatters take those).
    static func httpDate(_ s: String) -> Date? {
        let b = Array(s.utf8)
        guard b.count == 29, b[3] == UInt8(ascii: ","), s.hasSuffix(" GMT") else { return nil }
        func num(_ at: Int, _ n: Int) -> Int? {
            var v = 0
            for k in at..<(at + n) {
                guard b[k] &- 48 <= 9 else { return nil }
                v = v * 10 + Int(b[k] - 48)
            }
            return v
        }
        guard let day = num(5, 2), let year = num(12, 4), let hour = num(17, 2), let minute = num(20, 2), let second = num(23, 2),
              let month = months.firstIndex(where: { $0[...] == b[8..<11] }),
              (1...31).contains(day), hour < 24, minute < 60, second < 61 else { return nil }
        let days = Coercion.daysFromCivil(year: year, month: month + 1, day: day)
        return Date(timeIntervalSince1970: Double(days * 86_400 + Int64(hour * 3600 + minute * 60 + second)))
    }

    /// Creates the bucket (tests, examples); an existing bucket of ours is fine.
    public func createBucket() async throws(SluiceError) {
        let body: [UInt8]? = config.region == "us-east-1" ? nil
            : Array("<CreateBucketConfiguration><LocationConstraint>\(config.region)</LocationConstraint></CreateBucketConfiguration>".utf8)
        let a = try await send("CreateBucket") { request(.PUT, key: "", body: body) }
        guard a.status / 100 == 2 || MiniXML(a.body).first("Error/Code") == "BucketAlreadyOwnedByYou" else { throw fail("CreateBucket", a) }
    }

    public func list(prefix: String, continuation: String?, limit: Int) async throws(SluiceError) -> ObjectPage {
        var query = [("list-type", "2"), ("prefix", prefix), ("max-keys", String(limit))]
        if let continuation { query.append(("continuation-token", continuation)) }
        let q = query
        let a = try await send("ListObjectsV2") { request(.GET, key: "", query: q) }
        guard a.status == 200 else { throw fail("ListObjectsV2", a, key: prefix) }
        let xml = MiniXML(a.body)
        var objects: [ObjectInfo] = []
        var current: ObjectInfo? = nil
        for (path, text) in xml.leaves where path.hasPrefix("ListBucketResult/Contents/") {
            switch path.dropFirst("ListBucketResult/Contents/".count) {
            case "Key":
                if let c = current { objects.append(c) }
                current = ObjectInfo(key: text, size: 0, etag: "", lastModified: Date(timeIntervalSince1970: 0))
            case "Size": current?.size = Int64(text) ?? 0
            case "ETag": current?.etag = Self.unquote(text)
            case "LastModified": current?.lastModified = Self.date(text)
            default: break
            }
        }
        if let c = current { objects.append(c) }
        let truncated = xml.first("ListBucketResult/IsTruncated") == "true"
        return ObjectPage(objects: objects, continuation: truncated ? xml.first("ListBucketResult/NextContinuationToken") : nil)
    }

    static func info(_ key: String, _ h: HTTPHeaders, size: Int64? = nil) -> ObjectInfo {
        ObjectInfo(key: key, size: size ?? Int64(h.first(name: "Content-Length") ?? "") ?? 0, etag: unquote(h.first(name: "ETag") ?? ""),
                   lastModified: date(h.first(name: "Last-Modified") ?? ""))
    }

    public func head(_ key: String) async throws(SluiceError) -> ObjectInfo? {
        let a = try await send("HeadObject") { request(.HEAD, key: key) }
        if a.status == 404 { return nil }
        guard a.status == 200 else { throw fail("HeadObject", a, key: key) }
        return Self.info(key, a.headers)
    }

    public func get(_ key: String, range: Range<Int64>?, ifMatch: String?) async throws(SluiceError) -> [UInt8] {
        var headers: [(String, String)] = []
        if let range { headers.append(("range", "bytes=\(range.lowerBound)-\(range.upperBound - 1)")) }
        if let ifMatch { headers.append(("if-match", "\"\(ifMatch)\"")) }
        let h = headers
        let a = try await send("GetObject") { request(.GET, key: key, headers: h) }
        guard a.status == 200 || a.status == 206 else { throw fail("GetObject", a, key: key) }
        return a.body
    }

    public func download(_ key: String, to target: String, ifMatch: String?, hashing: Bool) async throws(SluiceError) -> (info: ObjectInfo, sha256: String?) {
        var attempt = 0
        while true {
            attempt += 1
            do {
                return try await downloadOnce(key, to: target, ifMatch: ifMatch, hashing: hashing)
            } catch where error.code == .unavailable && attempt < 4 {
                try? await Task.sleep(nanoseconds: UInt64(0.2 * pow(2, Double(attempt - 1)) * 1e9))
            }
        }
    }

    func downloadOnce(_ key: String, to target: String, ifMatch: String?, hashing: Bool) async throws(SluiceError) -> (info: ObjectInfo, sha256: String?) {
        var headers: [(String, String)] = []
        if let ifMatch { headers.append(("if-match", "\"\(ifMatch)\"")) }
        let out = try Download.openFile(target)
        defer { try? out.close() }  // synchronized explicitly below
        do {
            let response = try await Self.client.execute(request(.GET, key: key, headers: headers), timeout: .seconds(3600))
            let status = Int(response.status.code)
            guard status == 200 else {
                var body = try await response.body.collect(upTo: 1 << 20)
                let a = Answer(status: status, headers: response.headers, body: body.readBytes(length: body.readableBytes) ?? [])
                if status >= 500 || status == 429 { throw SluiceError(.unavailable, "GetObject \(displayName)/\(key): \(Self.describe(a))") }
                throw fail("GetObject", a, key: key)
            }
            let info = Self.info(key, response.headers)
            // S3 serves one version per GET; an etag other than the listed one means it was overwritten.
            if let ifMatch, info.etag != ifMatch {
                throw SluiceError(.aborted, "GetObject \(displayName)/\(key): changed since it was listed (etag \(ifMatch), now \(info.etag))")
            }
            var hasher = hashing ? SHA256() : nil
            var size: Int64 = 0
            for try await buffer in response.body {
                size += Int64(buffer.readableBytes)
                buffer.withUnsafeReadableBytes { hasher?.update(bufferPointer: $0) }
                try buffer.withUnsafeReadableBytes { try out.write(contentsOf: $0) }
            }
            try out.synchronize()
            guard size == info.size else {
                throw SluiceError(.unavailable, "GetObject \(displayName)/\(key): got \(size) of \(info.size) bytes")
            }
            return (info, hasher.map { SigV4Signer.hex($0.finalize()) })
        } catch let e as SluiceError {
            throw e
        } catch {
            throw SluiceError(.unavailable, "GetObject \(displayName)/\(key): \(error)")
        }
    }

    public func put(_ key: String, bytes: [UInt8], contentType: String?) async throws(SluiceError) -> String {
        let headers = contentType.map { [("content-type", $0)] } ?? []
        let a = try await send("PutObject") { request(.PUT, key: key, headers: headers, body: bytes) }
        guard a.status == 200 else { throw fail("PutObject", a, key: key) }
        return Self.unquote(a.headers.first(name: "ETag") ?? "")
    }

    /// `If-None-Match: *`.
    public func putIfAbsent(_ key: String, bytes: [UInt8]) async throws(SluiceError) -> Bool {
        let a = try await send("PutObject") { request(.PUT, key: key, headers: [("if-none-match", "*")], body: bytes) }
        if a.status == 200 { return true }
        guard a.status == 412 || a.status == 409 else { throw fail("PutObject", a, key: key) }
        return (try? await get(key, range: nil, ifMatch: nil)) == bytes
    }

    public func upload(_ key: String, from source: String, contentType: String?) async throws(SluiceError) -> String {
        guard let input = FileHandle(forReadingAtPath: source) else { throw SluiceError(.notFound, "cannot open", at: SourceLocation(file: source)) }
        defer { try? input.close() }
        let size = (try? FileManager.default.attributesOfItem(atPath: source)[.size] as? Int64) ?? 0
        func read(_ n: Int64) throws(SluiceError) -> [UInt8] {
            do { return [UInt8](try input.read(upToCount: Int(n)) ?? Data()) } catch {
                throw SluiceError(.io, "read failed: \(error.localizedDescription)", at: SourceLocation(file: source))
            }
        }
        if size < config.multipartThreshold { return try await put(key, bytes: try read(size), contentType: contentType) }
        // Multipart: create, upload each part, complete; abort on failure so no parts linger.
        let headers = contentType.map { [("content-type", $0)] } ?? []
        let created = try await send("CreateMultipartUpload") { request(.POST, key: key, query: [("uploads", "")], headers: headers) }
        guard created.status == 200, let uploadID = MiniXML(created.body).first("UploadId") else { throw fail("CreateMultipartUpload", created, key: key) }
        do throws(SluiceError) {
            var parts: [(Int, String)] = []
            var number = 1
            while true {
                let chunk = try read(config.partSize)
                if chunk.isEmpty { break }
                let n = number
                let a = try await send("UploadPart") { request(.PUT, key: key, query: [("partNumber", String(n)), ("uploadId", uploadID)], body: chunk) }
                guard a.status == 200, let etag = a.headers.first(name: "ETag") else { throw fail("UploadPart", a, key: key) }
                parts.append((n, etag))
                number += 1
            }
            let xml = "<CompleteMultipartUpload>" + parts.map { "<Part><PartNumber>\($0.0)</PartNumber><ETag>\($0.1)</ETag></Part>" }.joined() + "</CompleteMultipartUpload>"
            let done = try await send("CompleteMultipartUpload") { request(.POST, key: key, query: [("uploadId", uploadID)], body: Array(xml.utf8)) }
            // S3 can answer 200 with an error document for CompleteMultipartUpload.
            guard done.status == 200, MiniXML(done.body).first("Error/Code") == nil else { throw fail("CompleteMultipartUpload", done, key: key) }
            return Self.unquote(MiniXML(done.body).first("ETag") ?? "")
        } catch {
            _ = try? await send("AbortMultipartUpload", { request(.DELETE, key: key, query: [("uploadId", uploadID)]) }, attempts: 2)
            throw error
        }
    }

    public func copy(from: String, to: String, ifMatch: String?) async throws(SluiceError) {
        var headers = [("x-amz-copy-source", "/\(bucket)/" + SigV4Signer.encode(from, keepSlash: true))]
        if let ifMatch { headers.append(("x-amz-copy-source-if-match", "\"\(ifMatch)\"")) }
        let multipart = ifMatch?.contains("-") == true
        if let ifMatch, multipart, let now = try await head(from), now.etag != ifMatch {
            throw SluiceError(.aborted, "CopyObject \(displayName)/\(from): changed since it was listed (etag \(ifMatch), now \(now.etag))")
        }
        let h = headers
        let a = try await send("CopyObject") { request(.PUT, key: to, headers: h) }
        guard a.status == 200, MiniXML(a.body).first("Error/Code") == nil else { throw fail("CopyObject", a, key: from) }
        // Some S3-compatible servers ignore the copy precondition; a single-part object's copy
        // carries the source's etag, so check it ourselves.
        if let ifMatch, !multipart, let copied = MiniXML(a.body).first("ETag").map(Self.unquote), copied != ifMatch {
            try? await delete(to)
            throw SluiceError(.aborted, "CopyObject \(displayName)/\(from): changed since it was listed (etag \(ifMatch), now \(copied))")
        }
    }

    public func delete(_ key: String) async throws(SluiceError) {
        let a = try await send("DeleteObject") { request(.DELETE, key: key) }
        guard a.status == 204 || a.status == 200 || a.status == 404 else { throw fail("DeleteObject", a, key: key) }
    }
}

extension DateFormatter {
    /// `Wed, 21 Oct 2015 07:28:00 GMT`.
    nonisolated(unsafe) static let http: DateFormatter = {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "GMT")
        f.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        return f
    }()
}
