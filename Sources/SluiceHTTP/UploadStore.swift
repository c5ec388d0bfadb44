import SluiceCore
import SluiceQueue
import Hummingbird
import MultipartKit
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

    /// A file being written: its descriptor, hash and size.
    final class Sink: @unchecked Sendable {
        let id: String
        let path: String
        let fd: Int32
        var hasher = SHA256()
        var size: Int64 = 0
        let limit: Int64
        var closed = false

        init(dir: String, limit: Int64) throws(APIError) {
            do {
                try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            } catch {
                throw APIError(.internalServerError, "cannot create the upload folder")
            }
            id = UploadStore.newID()
            path = (dir as NSString).appendingPathComponent(id)
            self.limit = limit
            fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0o600)
            if fd < 0 { throw APIError(.internalServerError, "cannot create an upload file") }
        }

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

        func finish(originalName: String?, now: Date) throws(APIError) -> Upload {
            closed = true
            if fsync(fd) != 0 || close(fd) != 0 { throw APIError(.internalServerError, "cannot save the upload") }
            let sha = hasher.finalize().map { String(format: "%02x", $0) }.joined()
            return Upload(id: id, path: path, size: size, sha256: sha, originalName: UploadStore.displayName(originalName), createdAt: now)
        }

        /// Removes a partial file after a failure.
        func discard() {
            if !closed { close(fd); closed = true }
            unlink(path)
        }
    }

    /// Stores a raw body.
    func storeRaw(_ body: RequestBody, originalName: String?) async throws -> Upload {
        let sink = try Sink(dir: dir, limit: maxBytes)
        do {
            for try await buffer in body {
                try buffer.withUnsafeReadableBytes { (b) throws(APIError) in try sink.write(b) }
            }
            return try sink.finish(originalName: originalName, now: now())
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
        let parser = MultipartParser(boundary: boundary)
        let state = PartState(dir: dir, limit: maxBytes)
        parser.onHeader = { name, value in state.header(name, value) }
        parser.onBody = { buffer in state.body(&buffer) }
        parser.onPartComplete = { state.complete() }
        do {
            for try await buffer in body {
                try parser.execute(buffer)
                if let e = state.error { throw e }
            }
            if let e = state.error { throw e }
            guard state.parts > 0 && state.current == nil && state.headers.isEmpty else {
                throw APIError(.badRequest, "the multipart body ends in the middle of a part")
            }
            let upload = try state.sink.map { (s) throws(APIError) in try s.finish(originalName: state.fileName, now: now()) }
            return MultipartResult(upload: upload, fields: state.fields, fileField: state.fileField)
        } catch let e as APIError {
            state.sink?.discard()
            throw e
        } catch {
            state.sink?.discard()
            throw APIError(.badRequest, "malformed multipart body")
        }
    }

    /// Mutable parsing state for one multipart body (the parser's callbacks are synchronous).
    final class PartState: @unchecked Sendable {
        let dir: String
        let limit: Int64
        var headers: [String: String] = [:]
        var current: (name: String?, fileName: String?, isFile: Bool)?
        var text: [UInt8] = []
        var sink: Sink?
        var fileName: String?
        var fileField: String?
        var writingFile = false
        var fields: [String: String] = [:]
        var error: APIError?
        var parts = 0

        init(dir: String, limit: Int64) {
            self.dir = dir
            self.limit = limit
        }

        func header(_ name: String, _ value: String) {
            headers[name.lowercased()] = value
        }

        func startPartIfNeeded() {
            guard current == nil else { return }
            let disposition = ContentDisposition(headers["content-disposition"] ?? "")
            let isFile = sink == nil && (disposition.fileName != nil || disposition.name == "file")
            current = (disposition.name, disposition.fileName, isFile)
            if isFile {
                do {
                    sink = try Sink(dir: dir, limit: limit)
                    fileName = disposition.fileName
                    fileField = disposition.name
                    writingFile = true
                } catch {
                    self.error = error
                }
            }
        }

        func body(_ buffer: inout ByteBuffer) {
            startPartIfNeeded()
            guard error == nil else { return }
            if writingFile, let sink {
                do {
                    try buffer.withUnsafeReadableBytes { (b) throws(APIError) in try sink.write(b) }
                } catch {
                    self.error = error
                }
            } else {
                text.append(contentsOf: buffer.readableBytesView)
                if text.count > 64 << 10 { error = APIError(.contentTooLarge, "a form field is larger than 64 KiB") }
            }
        }

        func complete() {
            startPartIfNeeded()
            parts += 1
            if let c = current, !c.isFile, let name = c.name {
                fields[name] = String(decoding: text, as: UTF8.self)
            }
            writingFile = false
            current = nil
            headers = [:]
            text = []
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
