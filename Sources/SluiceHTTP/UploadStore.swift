import SluiceCore
import SluiceQueue
import Hummingbird
import NIOPosix
import Crypto
import Foundation

/// Streams request bodies to files in the upload folder under generated names, hashing
/// as they arrive; never holds a body in memory. A client's file name is kept only as
/// sanitised display text: it can never choose where bytes are written.
struct UploadStore: Sendable {
    let dir: String
    let maxBytes: Int64
    let now: @Sendable () -> Date

    /// 32 lowercase hex digits from the system's secure generator.
    static func newID() -> String {
        var g = SystemRandomNumberGenerator()
        return (0..<2).map { _ in String(format: "%016llx", g.next() as UInt64) }.joined()
    }

    /// Display text for a client's file name: the last path component, no control
    /// characters, at most 200 characters. Nil when nothing usable is left.
    static func displayName(_ raw: String?) -> String? {
        guard let raw else { return nil }
        let last = raw.split(whereSeparator: { $0 == "/" || $0 == "\\" }).last.map(String.init) ?? ""
        let clean = String(last.unicodeScalars.filter { $0.value >= 0x20 && $0.value != 0x7F }.map(Character.init)).prefix(200)
        let s = String(clean)
        return s.isEmpty || s == "." || s == ".." ? nil : s
    }

    /// The suffix of a file still being written: `<id>.<writer pid>.partial`. Renamed to its id
    /// once complete and synced, so a reader never sees half a file and a dead writer's
    /// leftovers are recognisable.
    static let partialSuffix = ".partial"

    /// Removes partial uploads whose writing process is gone (a server killed mid-upload);
    /// returns how many files and bytes were removed. Files of live writers are left alone.
    static func sweepPartials(dir: String) -> (files: Int, bytes: Int64) {
        var removed = (files: 0, bytes: Int64(0))
        let fm = FileManager.default
        for shard in (try? fm.contentsOfDirectory(atPath: dir)) ?? [] where shard.count == 2 {
            let folder = (dir as NSString).appendingPathComponent(shard)
            for name in (try? fm.contentsOfDirectory(atPath: folder)) ?? [] where name.hasSuffix(partialSuffix) {
                let parts = name.dropLast(partialSuffix.count).split(separator: ".")
                guard parts.count == 2, let pid = Int32(parts[1]) else { continue }
                if pid > 0, kill(pid, 0) == 0 || errno == EPERM { continue }  // its writer still runs
                let path = (folder as NSString).appendingPathComponent(name)
                let size = ((try? fm.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.int64Value ?? 0
                if unlink(path) == 0 { removed.files += 1; removed.bytes += size }
            }
        }
        return removed
    }

    /// fsyncs the folder holding `path`, so a rename into it survives a crash.
    static func syncFolder(of path: String) -> Bool {
        let fd = open((path as NSString).deletingLastPathComponent, O_RDONLY)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return fsync(fd) == 0
    }

    /// A file being written: its descriptor, hash and size. Opening and the final flush
    /// run on NIO's blocking-I/O pool so they never stall the (small) cooperative pool;
    /// writes go to the page cache and stay inline. It is written under a partial name and
    /// renamed to `path` when finished.
    final class Sink: @unchecked Sendable {
        let id: String
        let path: String
        let partialPath: String
        let fd: Int32
        var hasher = SHA256()
        var size: Int64 = 0
        let limit: Int64
        var closed = false

        private init(id: String, path: String, fd: Int32, limit: Int64) {
            self.id = id
            self.path = path
            self.partialPath = Sink.partial(path)
            self.fd = fd
            self.limit = limit
        }

        static func create(dir: String, limit: Int64) async throws -> Sink {
            let id = UploadStore.newID()
            // 256 subfolders by the id's first two digits: file creation in one folder
            // serialises on the folder's lock, and huge folders are slow to scan.
            let shard = (dir as NSString).appendingPathComponent(String(id.prefix(2)))
            let path = (shard as NSString).appendingPathComponent(id)
            let partial = partial(path)
            let fd: Int32 = try await NIOThreadPool.singleton.runIfActive {
                try? FileManager.default.createDirectory(atPath: shard, withIntermediateDirectories: true)
                return open(partial, O_WRONLY | O_CREAT | O_EXCL, 0o600)
            }
            if fd < 0 { throw APIError(.internalServerError, "cannot create an upload file") }
            return Sink(id: id, path: path, fd: fd, limit: limit)
        }

        static func partial(_ path: String) -> String { path + "." + String(getpid()) + UploadStore.partialSuffix }

        func write(_ bytes: UnsafeRawBufferPointer) throws(APIError) {
            size += Int64(bytes.count)
            if size > limit { throw APIError(.contentTooLarge, "the body is larger than \(limit) bytes") }
            hasher.update(bufferPointer: bytes)
            var off = 0
            while off < bytes.count {
                let n = Foundation.write(fd, bytes.baseAddress! + off, bytes.count - off)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw APIError(.internalServerError, "cannot write the upload")
                }
                off += n
            }
        }

        func finish(originalName: String?, now: Date) async throws -> Upload {
            closed = true
            let (fd, partial, path) = (self.fd, partialPath, self.path)
            // Durable before we answer: the client may delete its copy once it has our reply.
            let ok: Bool = try await NIOThreadPool.singleton.runIfActive {
                fdatasync(fd) == 0 && close(fd) == 0 && rename(partial, path) == 0 && UploadStore.syncFolder(of: path)
            }
            if !ok { throw APIError(.internalServerError, "cannot save the upload") }
            let sha = hasher.finalize().map { String(format: "%02x", $0) }.joined()
            return Upload(id: id, path: path, size: size, sha256: sha, originalName: UploadStore.displayName(originalName), createdAt: now)
        }

        /// Removes a partial (or unused) file.
        func discard() {
            if !closed { close(fd); closed = true }
            unlink(partialPath)
            unlink(path)
        }
    }

    /// Stores a raw body.
    func storeRaw(_ body: RequestBody, originalName: String?) async throws -> Upload {
        let sink = try await Sink.create(dir: dir, limit: maxBytes)
        do {
            for try await buffer in body {
                try buffer.withUnsafeReadableBytes { (b) throws(APIError) in try sink.write(b) }
            }
            return try await sink.finish(originalName: originalName, now: now())
        } catch {
            sink.discard()
            throw error
        }
    }

    /// The parts of a multipart body: the first file part (stored), and text fields.
    struct MultipartResult {
        var upload: Upload?
        var fields: [String: String]
        var fileField: String?
    }

    /// Streams a `multipart/form-data` body: the first part with a file name, or named
    /// `file`, goes to disk; other parts are small text fields (64 KiB at most each).
    func storeMultipart(_ body: RequestBody, boundary: String) async throws -> MultipartResult {
        // The file is opened up front (the open is the slow step); unused, it is removed.
        let sink = try await Sink.create(dir: dir, limit: maxBytes)
        var parser = MultipartStream(boundary: boundary)
        var fields: [String: String] = [:]
        var fileName: String?
        var fileField: String?
        var haveFile = false
        var inFile = false
        var fieldName: String?
        var text: [UInt8] = []
        do {
            for try await buffer in body {
                try buffer.withUnsafeReadableBytes { chunk in
                    try parser.feed(chunk) { event in
                        switch event {
                        case .headers(let h):
                            let d = ContentDisposition(h["content-disposition"] ?? "")
                            inFile = !haveFile && (d.fileName != nil || d.name == "file")
                            if inFile {
                                haveFile = true
                                fileName = d.fileName
                                fileField = d.name
                            }
                            fieldName = d.name
                            text.removeAll(keepingCapacity: true)
                        case .body(let bytes):
                            if inFile {
                                try sink.write(bytes)
                            } else {
                                text.append(contentsOf: bytes)
                                if text.count > 64 << 10 { throw APIError(.contentTooLarge, "a form field is larger than 64 KiB") }
                            }
                        case .partEnd:
                            if !inFile, let name = fieldName { fields[name] = String(decoding: text, as: UTF8.self) }
                            inFile = false
                        }
                    }
                }
            }
            guard parser.finished else { throw APIError(.badRequest, "the multipart body ends before its closing boundary") }
            if !haveFile {
                sink.discard()
                return MultipartResult(upload: nil, fields: fields, fileField: nil)
            }
            let upload = try await sink.finish(originalName: fileName, now: now())
            return MultipartResult(upload: upload, fields: fields, fileField: fileField)
        } catch let e as APIError {
            sink.discard()
            throw e
        } catch {
            sink.discard()
            throw APIError(.badRequest, "malformed multipart body")
        }
    }
}

/// `form-data; name="file"; filename="x.csv"`, parsed loosely.
struct ContentDisposition {
    var name: String?
    var fileName: String?

    init(_ raw: String) {
        for piece in raw.split(separator: ";").dropFirst() {
            let kv = piece.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard kv.count == 2 else { continue }
            var v = kv[1]
            if v.hasPrefix("\"") && v.hasSuffix("\"") && v.count >= 2 { v = String(v.dropFirst().dropLast()).replacingOccurrences(of: "\\\"", with: "\"") }
            switch kv[0].lowercased() {
            case "name": name = v
            case "filename": fileName = v
            case "filename*":
                // RFC 5987: charset''percent-encoded
                if let r = v.range(of: "''") { fileName = String(v[r.upperBound...]).removingPercentEncoding ?? fileName }
            default: break
            }
        }
    }
}

/// The boundary of a `multipart/form-data` content type, if it is one.
func multipartBoundary(_ contentType: String?) -> String? {
    guard let ct = contentType, ct.lowercased().hasPrefix("multipart/form-data") else { return nil }
    for piece in ct.split(separator: ";").dropFirst() {
        let kv = piece.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
        if kv.count == 2, kv[0].lowercased() == "boundary" {
            var b = kv[1]
            if b.hasPrefix("\"") && b.hasSuffix("\"") && b.count >= 2 { b = String(b.dropFirst().dropLast()) }
            return b.isEmpty ? nil : b
        }
    }
    return nil
}
