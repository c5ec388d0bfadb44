public import SluiceCore
public import Foundation
import Crypto
import AsyncHTTPClient
import NIOCore
import NIOHTTP1

/// An HTTP(S) server as a read-only store: HEAD, GET with byte ranges and `If-Match`.
/// Listing and writing are not part of HTTP and are refused.
public struct HTTPObjectStore: ObjectStore {
    public let base: String
    public var displayName: String { base }
    /// The largest body a download accepts (nil: no limit); a larger one is cut off and refused.
    public let maxBytes: Int64?

    public init(base: String, maxBytes: Int64? = nil) {
        self.base = base
        self.maxBytes = maxBytes
    }

    func url(_ key: String) -> String { base + "/" + key }

    func unsupported(_ what: String) -> SluiceError {
        SluiceError(.unsupported, "\(what) is not possible on a plain HTTP source (\(base)); use a folder or an S3 bucket")
    }

    func execute(_ method: HTTPMethod, _ key: String, headers: [(String, String)]) async throws(SluiceError) -> HTTPClientResponse {
        var r = HTTPClientRequest(url: url(key))
        r.method = method
        for (k, v) in headers { r.headers.add(name: k, value: v) }
        do {
            return try await S3ObjectStore.client.execute(r, timeout: .seconds(3600))
        } catch {
            throw SluiceError(.unavailable, "\(method.rawValue) \(url(key)): \(error)")
        }
    }

    static func check(_ r: HTTPClientResponse, _ what: String) throws(SluiceError) {
        switch Int(r.status.code) {
        case 200..<300: return
        case 404: throw SluiceError(.notFound, "\(what) answered 404")
        case 412: throw SluiceError(.aborted, "\(what): changed since it was listed (precondition failed)")
        case 408, 429, 500..<600: throw SluiceError(.unavailable, "\(what) answered \(r.status.code)")
        default: throw SluiceError(.refused, "\(what) answered \(r.status.code)")
        }
    }

    public func list(prefix: String, continuation: String?, limit: Int) async throws(SluiceError) -> ObjectPage { throw unsupported("listing") }

    public func head(_ key: String) async throws(SluiceError) -> ObjectInfo? {
        let r = try await execute(.HEAD, key, headers: [])
        if r.status.code == 404 { return nil }
        try Self.check(r, "HEAD \(url(key))")
        return S3ObjectStore.info(key, r.headers)
    }

    public func get(_ key: String, range: Range<Int64>?, ifMatch: String?) async throws(SluiceError) -> [UInt8] {
        var headers: [(String, String)] = []
        if let range { headers.append(("Range", "bytes=\(range.lowerBound)-\(range.upperBound - 1)")) }
        if let ifMatch { headers.append(("If-Match", "\"\(ifMatch)\"")) }
        let r = try await execute(.GET, key, headers: headers)
        try Self.check(r, "GET \(url(key))")
        do {
            var b = try await r.body.collect(upTo: 256 << 20)
            return b.readBytes(length: b.readableBytes) ?? []
        } catch {
            throw SluiceError(.unavailable, "GET \(url(key)): \(error)")
        }
    }

    public func download(_ key: String, to target: String, ifMatch: String?, hashing: Bool) async throws(SluiceError) -> (info: ObjectInfo, sha256: String?) {
        let r = try await execute(.GET, key, headers: ifMatch.map { [("If-Match", "\"\($0)\"")] } ?? [])
        try Self.check(r, "GET \(url(key))")
        let out = try Download.openFile(target)
        defer { try? out.close() }  // synchronized explicitly below
        var hasher = hashing ? SHA256() : nil
        var size: Int64 = 0
        do {
            for try await buffer in r.body {
                size += Int64(buffer.readableBytes)
                if let maxBytes, size > maxBytes { throw SluiceError(.refused, "GET \(url(key)) is larger than \(maxBytes) bytes") }
                buffer.withUnsafeReadableBytes { hasher?.update(bufferPointer: $0) }
                try out.write(contentsOf: Data(buffer.readableBytesView))
            }
            try out.synchronize()
        } catch let e as SluiceError {
            throw e
        } catch {
            throw SluiceError(.unavailable, "GET \(url(key)): \(error)")
        }
        var info = S3ObjectStore.info(key, r.headers, size: size)
        info.size = size
        return (info, hasher.map { SigV4Signer.hex($0.finalize()) })
    }

    public func put(_ key: String, bytes: [UInt8], contentType: String?) async throws(SluiceError) -> String { throw unsupported("writing") }
    public func upload(_ key: String, from path: String, contentType: String?) async throws(SluiceError) -> String { throw unsupported("writing") }
    public func copy(from: String, to: String, ifMatch: String?) async throws(SluiceError) { throw unsupported("copying") }
    public func delete(_ key: String) async throws(SluiceError) { throw unsupported("deleting") }
}
