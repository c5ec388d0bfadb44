public import SluiceCore
public import Foundation
import Crypto
#if canImport(Glibc)
import Glibc
#endif

/// An FTP server as an object store (RFC 959, passive mode, binary): NLST + SIZE + MDTM to
/// list (the etag is size and modification time: the seen-file key of seed 004's extractor),
/// RETR to read, STOR to write, DELE, RNFR/RNTO to move. One control connection per call;
/// the blocking socket work runs off the task pool.
public struct FTPObjectStore: ObjectStore {
    public let host: String
    public let port: Int
    let user: String
    let password: String
    /// The folder the keys are relative to, itself relative to the login folder (as in
    /// RFC 1738: `ftp://host/in/` is `in/` under the user's home).
    public let root: String
    public var displayName: String { "ftp://\(host):\(port)" + (root.isEmpty ? "" : "/" + root.dropLast()) }
    static let queue = DispatchQueue(label: "sluice.ftp", attributes: .concurrent)

    /// `ftp://user:password@host:port/folder` (credentials also from `FTP_USER` / `FTP_PASSWORD`).
    public init(url: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws(SluiceError) {
        guard let c = URLComponents(string: url), c.scheme == "ftp", let host = c.host, !host.isEmpty else {
            throw SluiceError(.invalidArgument, "not an FTP URL (ftp://user:password@host:port/folder): \(url)")
        }
        self.host = host
        port = c.port ?? 21
        user = c.user?.removingPercentEncoding ?? environment["FTP_USER"] ?? "anonymous"
        password = c.password?.removingPercentEncoding ?? environment["FTP_PASSWORD"] ?? "sluice@"
        let path = String(c.path.drop { $0 == "/" })
        root = path.isEmpty || path.hasSuffix("/") ? path : path + "/"
    }

    func blocking<T: Sendable>(_ body: @escaping @Sendable (FTPSession) throws(SluiceError) -> T) async throws(SluiceError) -> T {
        let (host, port, user, password) = (host, port, user, password)
        let result: Result<T, SluiceError> = await withCheckedContinuation { cont in
            Self.queue.async {
                cont.resume(returning: Result { () throws(SluiceError) -> T in
                    let s = try FTPSession(host: host, port: port, user: user, password: password)
                    defer { s.close() }
                    return try body(s)
                })
            }
        }
        return try result.get()
    }

    func path(_ key: String) -> String { root + key }

    public func list(prefix: String, continuation: String?, limit: Int) async throws(SluiceError) -> ObjectPage {
        let root = root
        let all = try await blocking { (s) throws(SluiceError) -> [ObjectInfo] in
            // The folder part of the prefix is listed; the rest filters names.
            let folder = prefix.contains("/") ? String(prefix[..<prefix.lastIndex(of: "/")!]) + "/" : ""
            var out: [ObjectInfo] = []
            for name in try s.names(root + folder) {
                let base = (name as NSString).lastPathComponent
                let key = folder + base
                guard key.hasPrefix(prefix), let size = try s.size(root + key) else { continue }  // no size: a folder
                let modified = try s.modified(root + key) ?? Date(timeIntervalSince1970: 0)
                out.append(ObjectInfo(key: key, size: size, etag: "\(size)-\(Int64(modified.timeIntervalSince1970))", lastModified: modified))
            }
            return out.sorted { $0.key < $1.key }
        }
        let after = all.filter { o in continuation.map { o.key > $0 } ?? true }
        let page = Array(after.prefix(limit))
        return ObjectPage(objects: page, continuation: after.count > page.count ? page.last?.key : nil)
    }

    public func head(_ key: String) async throws(SluiceError) -> ObjectInfo? {
        let p = path(key)
        return try await blocking { (s) throws(SluiceError) -> ObjectInfo? in
            guard let size = try s.size(p) else { return nil }
            let modified = try s.modified(p) ?? Date(timeIntervalSince1970: 0)
            return ObjectInfo(key: key, size: size, etag: "\(size)-\(Int64(modified.timeIntervalSince1970))", lastModified: modified)
        }
    }

    public func get(_ key: String, range: Range<Int64>?, ifMatch: String?) async throws(SluiceError) -> [UInt8] {
        let tmp = NSTemporaryDirectory() + "sluice-ftp-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        _ = try await download(key, to: tmp, ifMatch: ifMatch)
        guard let data = FileManager.default.contents(atPath: tmp) else { throw SluiceError(.io, "cannot read", at: SourceLocation(file: tmp)) }
        let bytes = [UInt8](data)
        guard let range else { return bytes }
        return Array(bytes[Int(min(range.lowerBound, Int64(bytes.count)))..<Int(min(range.upperBound, Int64(bytes.count)))])
    }

    public func download(_ key: String, to target: String, ifMatch: String?, hashing: Bool) async throws(SluiceError) -> (info: ObjectInfo, sha256: String?) {
        guard let before = try await head(key) else { throw SluiceError(.notFound, "\(displayName)/\(key) does not exist") }
        if let ifMatch, before.etag != ifMatch {
            throw SluiceError(.aborted, "\(displayName)/\(key) changed since it was listed (\(ifMatch), now \(before.etag))")
        }
        let p = path(key)
        let sha = try await blocking { (s) throws(SluiceError) -> String? in try s.retrieve(p, to: target, hashing: hashing) }
        guard let after = try await head(key), after.etag == before.etag else {
            throw SluiceError(.aborted, "\(displayName)/\(key) changed while it was read")
        }
        return (before, sha)
    }

    public func put(_ key: String, bytes: [UInt8], contentType: String?) async throws(SluiceError) -> String {
        let tmp = NSTemporaryDirectory() + "sluice-ftp-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        FileManager.default.createFile(atPath: tmp, contents: Data(bytes))
        return try await upload(key, from: tmp, contentType: contentType)
    }

    public func upload(_ key: String, from source: String, contentType: String?) async throws(SluiceError) -> String {
        let p = path(key)
        try await blocking { (s) throws(SluiceError) in try s.store(p, from: source) }
        return try await head(key)?.etag ?? ""
    }

    public func copy(from: String, to: String, ifMatch: String?) async throws(SluiceError) {
        let tmp = NSTemporaryDirectory() + "sluice-ftp-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        _ = try await download(from, to: tmp, ifMatch: ifMatch)
        _ = try await upload(to, from: tmp, contentType: nil)
    }

    public func delete(_ key: String) async throws(SluiceError) {
        let p = path(key)
        try await blocking { (s) throws(SluiceError) in try s.delete(p) }
    }

    /// Moves an object (RNFR/RNTO), creating the target folder if needed.
    public func move(_ key: String, to newKey: String) async throws(SluiceError) {
        let (a, b) = (path(key), path(newKey))
        let folder = (b as NSString).deletingLastPathComponent
        try await blocking { (s) throws(SluiceError) in
            if !folder.isEmpty { _ = try? s.command("MKD \(folder)", expect: [257]) }  // may exist already
            try s.rename(a, b)
        }
    }
}

/// One logged-in control connection (blocking sockets; one thread at a time).
final class FTPSession {
    let fd: Int32
    let host: String
    var buffer: [UInt8] = []

    init(host: String, port: Int, user: String, password: String) throws(SluiceError) {
        self.host = host
        fd = try Self.connect(host: host, port: port)
        do {
            _ = try reply(expect: [220])
            let u = try command("USER \(user)", expect: [230, 331])
            if u.code == 331 { _ = try command("PASS \(password)", expect: [230]) }
            _ = try command("TYPE I", expect: [200])
        } catch {
            Glibc.close(fd)
            throw error
        }
    }

    func close() {
        _ = try? command("QUIT", expect: [221])
        Glibc.close(fd)
    }

    static func connect(host: String, port: Int) throws(SluiceError) -> Int32 {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var res: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &res) == 0, let ai = res else {
            throw SluiceError(.unavailable, "FTP: cannot resolve \(host)")
        }
        defer { freeaddrinfo(res) }
        let fd = socket(ai.pointee.ai_family, ai.pointee.ai_socktype, ai.pointee.ai_protocol)
        guard fd >= 0 else { throw SluiceError(.unavailable, "FTP: no socket: \(String(cString: strerror(errno)))") }
        var tv = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        guard Glibc.connect(fd, ai.pointee.ai_addr, ai.pointee.ai_addrlen) == 0 else {
            let why = String(cString: strerror(errno))
            Glibc.close(fd)
            throw SluiceError(.unavailable, "FTP: cannot connect to \(host):\(port): \(why)")
        }
        return fd
    }

    func send(_ line: String) throws(SluiceError) {
        let bytes = Array((line + "\r\n").utf8)
        var at = 0
        while at < bytes.count {
            let n = bytes[at...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw SluiceError(.unavailable, "FTP: the connection closed") }
            at += n
        }
    }

    func readLine() throws(SluiceError) -> String {
        while true {
            if let nl = buffer.firstIndex(of: 0x0A) {
                let line = String(decoding: buffer[..<nl], as: UTF8.self).trimmingCharacters(in: .newlines)
                buffer.removeSubrange(...nl)
                return line
            }
            var chunk = [UInt8](repeating: 0, count: 4096)
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { throw SluiceError(.unavailable, "FTP: the connection closed (or timed out)") }
            buffer += chunk[..<n]
        }
    }

    /// A (possibly multi-line) reply: its code and text.
    func reply(expect: Set<Int>) throws(SluiceError) -> (code: Int, text: String) {
        var line = try readLine()
        guard line.count >= 3, let code = Int(line.prefix(3)) else { throw SluiceError(.io, "FTP: unexpected reply '\(line)'") }
        var text = line
        if line.dropFirst(3).first == "-" {
            repeat {
                line = try readLine()
                text += "\n" + line
            } while !(line.hasPrefix("\(code) "))
        }
        guard expect.contains(code) else {
            throw SluiceError(code == 550 ? .notFound : (400..<500).contains(code) ? .unavailable : .refused, "FTP: \(text)")
        }
        return (code, text)
    }

    func command(_ line: String, expect: Set<Int>) throws(SluiceError) -> (code: Int, text: String) {
        try send(line)
        return try reply(expect: expect)
    }

    /// Opens a passive data connection.
    func passive() throws(SluiceError) -> Int32 {
        let r = try command("PASV", expect: [227])
        guard let open = r.text.firstIndex(of: "("), let close = r.text.firstIndex(of: ")") else { throw SluiceError(.io, "FTP: bad PASV reply '\(r.text)'") }
        let nums = r.text[r.text.index(after: open)..<close].split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard nums.count == 6 else { throw SluiceError(.io, "FTP: bad PASV reply '\(r.text)'") }
        // The address in the reply is ignored (it may be a private one): the control host is used.
        return try Self.connect(host: host, port: nums[4] * 256 + nums[5])
    }

    func readAll(_ data: Int32, into sink: (UnsafeRawBufferPointer) throws(SluiceError) -> Void) throws(SluiceError) {
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(data, $0.baseAddress, $0.count, 0) }
            if n == 0 { return }
            guard n > 0 else { throw SluiceError(.unavailable, "FTP: the data connection failed") }
            try chunk.withBytes { (b) throws(SluiceError) in try sink(UnsafeRawBufferPointer(rebasing: b[..<n])) }
        }
    }

    func names(_ folder: String) throws(SluiceError) -> [String] {
        let data = try passive()
        defer { Glibc.close(data) }
        do {
            _ = try command(folder.isEmpty ? "NLST" : "NLST \(folder)", expect: [125, 150])
        } catch where error.code == .notFound || error.message.contains("450") {
            return []
        }
        var bytes: [UInt8] = []
        try readAll(data) { bytes += $0 }
        _ = try reply(expect: [226, 250])
        return String(decoding: bytes, as: UTF8.self).split(whereSeparator: \.isNewline).map { String($0) }
    }

    /// nil for a folder or a missing file.
    func size(_ path: String) throws(SluiceError) -> Int64? {
        do { return Int64(try command("SIZE \(path)", expect: [213]).text.dropFirst(4)) } catch where error.code == .notFound { return nil }
    }

    func modified(_ path: String) throws(SluiceError) -> Date? {
        let text: String
        do { text = try command("MDTM \(path)", expect: [213]).text } catch where error.code == .notFound { return nil }
        var c = DateComponents()
        let d = Array(text.dropFirst(4).prefix(14))
        guard d.count == 14, let y = Int(String(d[0..<4])), let mo = Int(String(d[4..<6])), let da = Int(String(d[6..<8])),
              let h = Int(String(d[8..<10])), let mi = Int(String(d[10..<12])), let s = Int(String(d[12..<14])) else { return nil }
        (c.year, c.month, c.day, c.hour, c.minute, c.second) = (y, mo, da, h, mi, s)
        var cal = Calendar(identifier: .gregorian)
        cal.timeZone = TimeZone(identifier: "UTC")!
        return cal.date(from: c)
    }

    func retrieve(_ path: String, to target: String, hashing: Bool) throws(SluiceError) -> String? {
        let out = try Download.openFile(target)
        defer { try? out.close() }  // synchronized explicitly below
        let data = try passive()
        defer { Glibc.close(data) }
        _ = try command("RETR \(path)", expect: [125, 150])
        var hasher = hashing ? SHA256() : nil
        try readAll(data) { (b) throws(SluiceError) in
            hasher?.update(bufferPointer: b)
            do { try out.write(contentsOf: Data(b)) } catch { throw SluiceError(.io, "write failed", at: SourceLocation(file: target)) }
        }
        _ = try reply(expect: [226, 250])
        do { try out.synchronize() } catch { throw SluiceError(.io, "sync failed", at: SourceLocation(file: target)) }
        return hasher.map { SigV4Signer.hex($0.finalize()) }
    }

    func store(_ path: String, from source: String) throws(SluiceError) {
        guard let input = FileHandle(forReadingAtPath: source) else { throw SluiceError(.notFound, "cannot open", at: SourceLocation(file: source)) }
        defer { try? input.close() }  // read-only
        let data = try passive()
        var closed = false
        defer { if !closed { Glibc.close(data) } }
        _ = try command("STOR \(path)", expect: [125, 150])
        do throws(SluiceError) {
            while true {
                let chunk: Data?
                do { chunk = try input.read(upToCount: 1 << 16) } catch {
                    throw SluiceError(.io, "read failed: \(error.localizedDescription)", at: SourceLocation(file: source))
                }
                guard let chunk, !chunk.isEmpty else { break }
                let bytes = [UInt8](chunk)
                var at = 0
                while at < bytes.count {
                    let n = bytes[at...].withUnsafeBytes { Glibc.send(data, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                    guard n > 0 else { throw SluiceError(.unavailable, "FTP: the data connection failed") }
                    at += n
                }
            }
        } catch {
            // The server cannot tell a cut transfer from a whole one: remove what it stored.
            Glibc.close(data)
            closed = true
            _ = try? reply(expect: [226, 250, 426, 451])
            try? delete(path)
            throw error
        }
        Glibc.close(data)
        closed = true
        _ = try reply(expect: [226, 250])
    }

    func delete(_ path: String) throws(SluiceError) {
        do { _ = try command("DELE \(path)", expect: [250]) } catch where error.code == .notFound {}
    }

    func rename(_ from: String, _ to: String) throws(SluiceError) {
        _ = try command("RNFR \(from)", expect: [350])
        _ = try command("RNTO \(to)", expect: [250])
    }
}
