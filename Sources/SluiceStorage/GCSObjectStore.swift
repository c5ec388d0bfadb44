public import SluiceCore
public import Foundation
import Crypto
import NIOHTTP1

/// A Google Cloud Storage bucket through the JSON API: paged listings, ranged media
/// downloads pinned to a generation (the object's version, our etag), simple and resumable
/// uploads, server-side rewrites and deletes, with Google's auth, backoff and rate limit.
public struct GCSObjectStore: ExclusiveCreate {
    public let bucket: String
    let api: GoogleAPI
    public var displayName: String { "gs://\(bucket)" }
    /// Files from this size up are uploaded through a resumable session, in chunks this big
    /// (a multiple of 256 KiB, as the API requires).
    public var resumableThreshold: Int64 = 8 << 20
    public var chunkSize = 8 << 20

    public init(bucket: String, config: GoogleConfig) throws(SluiceError) {
        guard Self.isValidBucket(bucket) else { throw SluiceError(.invalidArgument, "'\(bucket)' is not a valid Cloud Storage bucket name") }
        self.bucket = bucket
        api = GoogleAPI(config: config, name: "gs://\(bucket)")
    }

    /// 3–222 characters of lower-case letters, digits, `-`, `_` and `.`, starting and ending
    /// with a letter or digit (each dot-separated part at most 63).
    public static func isValidBucket(_ b: String) -> Bool {
        let bytes = Array(b.utf8)
        guard (3...222).contains(bytes.count), b.split(separator: ".").allSatisfy({ $0.utf8.count <= 63 }) else { return false }
        func alnum(_ c: UInt8) -> Bool { (c >= 97 && c <= 122) || (c >= 48 && c <= 57) }
        return alnum(bytes.first!) && alnum(bytes.last!) && bytes.allSatisfy { alnum($0) || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") }
    }

    var base: String { api.config.storageEndpoint + "/storage/v1/b/" + GoogleAPI.encode(bucket) }
    func objectURL(_ key: String) -> String { base + "/o/" + GoogleAPI.encode(key) }

    /// An object resource (`name`, `size` and `generation` as strings, `updated`).
    struct Resource: Decodable {
        var name: String
        var size: String?
        var generation: String?
        var updated: String?

        var info: ObjectInfo {
            ObjectInfo(key: name, size: size.flatMap { Int64($0) } ?? 0, etag: generation ?? "", lastModified: GoogleAPI.date(updated))
        }
    }


    public func list(prefix: String, continuation: String?, limit: Int) async throws(SluiceError) -> ObjectPage {
        let url = base + "/o" + GoogleAPI.query([("prefix", prefix.isEmpty ? nil : prefix), ("maxResults", String(max(1, min(limit, 1000)))),
                                           ("pageToken", continuation)])
        let a = try await api.call("objects.list", url: url)
        guard a.status == 200 else { throw api.fail("objects.list", a, object: prefix) }
        struct Page: Decodable { var items: [Resource]?; var nextPageToken: String? }
        let page = try api.decode(Page.self, a, "objects.list")
        return ObjectPage(objects: (page.items ?? []).map(\.info), continuation: page.nextPageToken)
    }

    public func head(_ key: String) async throws(SluiceError) -> ObjectInfo? {
        let a = try await api.call("objects.get", url: objectURL(key))
        if a.status == 404 { return nil }
        guard a.status == 200 else { throw api.fail("objects.get", a, object: key) }
        return try api.decode(Resource.self, a, "objects.get").info
    }

    /// The media URL of `key`, only while its generation is still `ifMatch`.
    func mediaURL(_ key: String, ifMatch: String?) -> String {
        objectURL(key) + GoogleAPI.query([("alt", "media"), ("ifGenerationMatch", ifMatch)])
    }

    public func get(_ key: String, range: Range<Int64>?, ifMatch: String?) async throws(SluiceError) -> [UInt8] {
        let headers = range.map { [("Range", "bytes=\($0.lowerBound)-\($0.upperBound - 1)")] } ?? []
        let a = try await api.call("objects.get (media)", url: mediaURL(key, ifMatch: ifMatch), headers: headers)
        guard a.status == 200 || a.status == 206 else { throw api.fail("objects.get (media)", a, object: key) }
        return a.body
    }

    public func download(_ key: String, to target: String, ifMatch: String?, hashing: Bool) async throws(SluiceError) -> (info: ObjectInfo, sha256: String?) {
        let out = try Download.openFile(target)
        defer { try? out.close() }  // synchronized by the download
        var hasher = hashing ? SHA256() : nil
        var size: Int64 = 0
        var info = ObjectInfo(key: key, size: 0, etag: ifMatch ?? "", lastModified: Date(timeIntervalSince1970: 0))
        let a = try await api.download("objects.get (media)", url: mediaURL(key, ifMatch: ifMatch), into: out, onHeaders: { h throws(SluiceError) in
            hasher = hashing ? SHA256() : nil
            size = 0
            info.etag = h.first(name: "x-goog-generation") ?? ifMatch ?? ""
            // What is served (an object stored gzip-encoded is served decompressed, longer than
            // stored); no length (chunked): not checked.
            info.size = Int64(h.first(name: "Content-Length") ?? "") ?? -1
            info.lastModified = h.first(name: "Last-Modified").map(S3ObjectStore.date) ?? info.lastModified
            // The generation pinned by ifGenerationMatch; a server that ignored it is caught here.
            if let ifMatch, info.etag != ifMatch {
                throw SluiceError(.aborted, "objects.get \(displayName)/\(key): changed since it was listed (generation \(ifMatch), now \(info.etag))")
            }
        }, chunk: { p in
            size += Int64(p.count)
            hasher?.update(bufferPointer: p)
        })
        guard a.status == 200 else {
            if a.status == 412 { throw SluiceError(.aborted, "objects.get \(displayName)/\(key): changed since it was listed (generation \(ifMatch ?? "?"))") }
            throw api.fail("objects.get (media)", a, object: key)
        }
        if info.size >= 0 && size != info.size {
            throw SluiceError(.unavailable, "objects.get \(displayName)/\(key): got \(size) of \(info.size) bytes")
        }
        info.size = size
        return (info, hasher.map { SigV4Signer.hex($0.finalize()) })
    }

    var uploadBase: String { api.config.storageEndpoint + "/upload/storage/v1/b/" + GoogleAPI.encode(bucket) + "/o" }

    public func put(_ key: String, bytes: [UInt8], contentType: String?) async throws(SluiceError) -> String {
        let url = uploadBase + GoogleAPI.query([("uploadType", "media"), ("name", key)])
        let a = try await api.call("objects.insert", method: "POST", url: url,
                                   headers: [("Content-Type", contentType ?? "application/octet-stream")], body: bytes)
        guard a.status == 200 else { throw api.fail("objects.insert", a, object: key) }
        return try api.decode(Resource.self, a, "objects.insert").generation ?? ""
    }

    /// `ifGenerationMatch=0`: only while no live object has the name.
    public func putIfAbsent(_ key: String, bytes: [UInt8]) async throws(SluiceError) -> Bool {
        let url = uploadBase + GoogleAPI.query([("uploadType", "media"), ("name", key), ("ifGenerationMatch", "0")])
        let a = try await api.call("objects.insert", method: "POST", url: url, headers: [("Content-Type", "application/octet-stream")], body: bytes)
        if a.status == 200 { return true }
        guard a.status == 412 else { throw api.fail("objects.insert", a, object: key) }
        return (try? await get(key, range: nil, ifMatch: nil)) == bytes
    }

    /// Small files in one request; larger ones through a resumable session, chunk by chunk,
    /// each chunk starting where the server says the last one ended (a retried chunk
    /// never writes bytes twice).
    public func upload(_ key: String, from source: String, contentType: String?) async throws(SluiceError) -> String {
        guard let input = FileHandle(forReadingAtPath: source) else { throw SluiceError(.notFound, "cannot open", at: SourceLocation(file: source)) }
        defer { try? input.close() }
        let total = (try? FileManager.default.attributesOfItem(atPath: source)[.size] as? Int64) ?? 0
        func read(at offset: Int64, _ n: Int) throws(SluiceError) -> [UInt8] {
            do {
                try input.seek(toOffset: UInt64(offset))
                return [UInt8](try input.read(upToCount: n) ?? Data())
            } catch {
                throw SluiceError(.io, "read failed: \(error.localizedDescription)", at: SourceLocation(file: source))
            }
        }
        if total < resumableThreshold { return try await put(key, bytes: try read(at: 0, Int(total)), contentType: contentType) }
        let start = uploadBase + GoogleAPI.query([("uploadType", "resumable"), ("name", key)])
        let opened = try await api.call("objects.insert (resumable)", method: "POST", url: start,
                                        headers: [("X-Upload-Content-Type", contentType ?? "application/octet-stream"),
                                                  ("X-Upload-Content-Length", String(total)), ("Content-Length", "0")], body: [])
        guard opened.status == 200, let session = opened.headers.first(name: "Location") else { throw api.fail("objects.insert (resumable)", opened, object: key) }
        var offset: Int64 = 0
        while true {
            let chunk = try read(at: offset, chunkSize)
            let last = offset + Int64(chunk.count) == total
            let range = chunk.isEmpty ? "bytes */\(total)" : "bytes \(offset)-\(offset + Int64(chunk.count) - 1)/\(last ? String(total) : "*")"
            let a = try await api.call("resumable upload", method: "PUT", url: session, headers: [("Content-Range", range)], body: chunk)
            if a.status == 200 || a.status == 201 { return try api.decode(Resource.self, a, "resumable upload").generation ?? "" }
            guard a.status == 308 else { throw api.fail("resumable upload", a, object: key) }
            // `Range: bytes=0-N`: what the server holds; no header: nothing yet.
            let held = a.headers.first(name: "Range").flatMap { $0.split(separator: "-").last.flatMap { Int64($0) } }.map { $0 + 1 } ?? 0
            guard held > offset || (held == offset && !chunk.isEmpty) else {
                throw SluiceError(.io, "resumable upload \(displayName)/\(key): the server holds \(held) bytes after a chunk at \(offset)")
            }
            offset = held
        }
    }

    /// A rewrite inside the bucket, only while the source's generation is `ifMatch`.
    public func copy(from: String, to: String, ifMatch: String?) async throws(SluiceError) {
        var token: String? = nil
        repeat {
            let url = objectURL(from) + "/rewriteTo/b/" + GoogleAPI.encode(bucket) + "/o/" + GoogleAPI.encode(to)
                + GoogleAPI.query([("ifSourceGenerationMatch", ifMatch), ("rewriteToken", token)])
            let a = try await api.call("objects.rewrite", method: "POST", url: url, headers: [("Content-Type", "application/json")], body: Array("{}".utf8))
            if a.status == 412 { throw SluiceError(.aborted, "objects.rewrite \(displayName)/\(from): changed since it was listed (generation \(ifMatch ?? "?"))") }
            guard a.status == 200 else { throw api.fail("objects.rewrite", a, object: from) }
            struct Rewrite: Decodable { var done: Bool; var rewriteToken: String? }
            let r = try api.decode(Rewrite.self, a, "objects.rewrite")
            token = r.done ? nil : r.rewriteToken
        } while token != nil
    }

    public func delete(_ key: String) async throws(SluiceError) {
        let a = try await api.call("objects.delete", method: "DELETE", url: objectURL(key))
        guard a.status == 204 || a.status == 200 || a.status == 404 else { throw api.fail("objects.delete", a, object: key) }
    }
}
